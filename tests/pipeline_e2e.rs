//! `tomtat run` end to end through the real binary, on small random-weight models in real
//! formats (made by `tomtat random-model` with the committed tokenizer fixtures) and real
//! text: every IWSLT'15 talk of ../shared (21: dev2010 + tst2012) and 50 VietNews articles.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn tomtat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tomtat"))
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run tomtat");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct Setup {
    _dir: tempfile::TempDir,
    input: PathBuf,
    translator: PathBuf,
    summarizer: PathBuf,
    out: PathBuf,
    n_docs: usize,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let translator = d.join("translator");
    let summarizer = d.join("summarizer");
    let tok = |n: &str| format!("{ROOT}/tests/fixtures/tokenizers/{n}");
    ok(tomtat()
        .args([
            "random-model",
            "--arch",
            "marian",
            "--tokenizer",
            &tok("marian-vi-en"),
            "--out",
        ])
        .arg(&translator));
    ok(tomtat()
        .args([
            "random-model",
            "--arch",
            "bart",
            "--tokenizer",
            &tok("bart-bpe"),
            "--out",
        ])
        .arg(&summarizer));

    let mut lines = Vec::new();
    for f in ["dev2010", "tst2012"] {
        let p = format!("{ROOT}/../shared/data/iwslt15/{f}.docs.json");
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(&p).expect("shared iwslt data")).unwrap();
        for talk in v["vi"].as_array().unwrap() {
            let segs: Vec<&str> = talk["segs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            // A talk is a multi-paragraph document: paragraphs of 5 segments.
            let paras: Vec<String> = segs.chunks(5).map(|c| c.join(" ")).collect();
            lines.push(json!({"id": format!("{f}-{}", talk["docid"]), "title": talk["title"], "text": paras.join("\n\n"), "source": "iwslt"}));
        }
    }
    let news =
        std::fs::read_to_string(format!("{ROOT}/../shared/data/vietnews/val300.jsonl")).unwrap();
    for l in news.lines().take(50) {
        let v: Value = serde_json::from_str(l).unwrap();
        let body: Vec<&str> = v["body_sentences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        lines.push(json!({"id": format!("vn-{}", v["id"].as_str().unwrap()), "title": v["title"], "text": body.join(" ")}));
    }
    let input = d.join("input.jsonl");
    let n_docs = lines.len();
    std::fs::write(
        &input,
        lines
            .iter()
            .map(|l| l.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    Setup {
        input,
        translator,
        summarizer,
        out: d.join("out.jsonl"),
        n_docs,
        _dir: dir,
    }
}

impl Setup {
    fn run_cmd(&self, out: &Path, extra: &[&str]) -> Command {
        let mut c = tomtat();
        c.arg("-q")
            .arg("run")
            .arg(&self.input)
            .arg("--translator")
            .arg(&self.translator);
        c.arg("--summarizer")
            .arg(&self.summarizer)
            .args(["--beams", "1", "--batch-articles", "8", "-o"])
            .arg(out);
        c.args(extra);
        c
    }
}

fn read_records(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is a whole JSON record"))
        .collect()
}

/// Records without their wall-clock timings, which differ between any two runs.
fn comparable(mut v: Vec<Value>) -> Vec<Value> {
    for r in &mut v {
        r.as_object_mut().unwrap().remove("timings");
    }
    v
}

#[test]
fn run_end_to_end_resume_and_shards() {
    let s = setup();
    let t0 = Instant::now();
    ok(&mut s.run_cmd(&s.out, &[]));
    let full = read_records(&s.out);
    eprintln!(
        "full run: {} records in {:.1} s",
        full.len(),
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(full.len(), s.n_docs, "one record per article");

    // Every source sentence accounted for once, in order, paragraphs preserved: compare
    // with what `tomtat split` makes of the same input.
    let split = ok(tomtat().arg("split").arg(&s.input));
    let split: Vec<Value> = split
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let input: Vec<Value> = std::fs::read_to_string(&s.input)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut chunked_talks = 0;
    for ((rec, sp), inp) in full.iter().zip(&split).zip(&input) {
        assert_eq!(rec["id"], sp["id"]);
        assert_eq!(rec["title"], inp["title"], "passthrough fields kept");
        let want: Vec<(u64, &Value, &Value, &Value)> = sp["paragraphs"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .flat_map(|(p, para)| {
                para.as_array()
                    .unwrap()
                    .iter()
                    .map(move |s| (p as u64, &s["text"], &s["start"], &s["end"]))
            })
            .collect();
        let got: Vec<(u64, &Value, &Value, &Value)> = rec["sentences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["paragraph"].as_u64().unwrap(),
                    &s["text"],
                    &s["start"],
                    &s["end"],
                )
            })
            .collect();
        assert_eq!(got, want, "{}: sentences", rec["id"]);
        for s in rec["sentences"].as_array().unwrap() {
            assert!(!s["translation"].as_str().unwrap().trim().is_empty());
        }
        let n_paras = sp["paragraphs"].as_array().unwrap().len();
        assert_eq!(
            rec["translation"].as_str().unwrap().split("\n\n").count(),
            n_paras,
            "{}: paragraphs",
            rec["id"]
        );
        assert!(!rec["summary"].as_str().unwrap().is_empty());
        assert!(rec["models"]["translator"].is_object() && rec["models"]["summarizer"].is_object());
        assert!(rec["tokens"]["translate_in"].as_u64().unwrap() > 0);
        let chunked = rec["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().starts_with("chunked:"));
        if inp["source"] == "iwslt" && chunked {
            chunked_talks += 1;
        }
    }
    assert!(
        chunked_talks >= 10,
        "the summarizer's map-reduce ran on the long talks ({chunked_talks})"
    );

    // --resume after a kill gives the same records as the uninterrupted run.
    let killed = s.out.with_file_name("killed.jsonl");
    let mut child = s
        .run_cmd(&killed, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    while std::fs::read_to_string(&killed).map_or(0, |t| t.lines().count()) < 16 {
        assert!(Instant::now() < deadline, "no output from the run to kill");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = read_records(&killed).len();
    assert!(partial < s.n_docs, "killed mid-run ({partial} records)");
    ok(&mut s.run_cmd(&killed, &["--resume"]));
    assert_eq!(
        comparable(read_records(&killed)),
        comparable(full.clone()),
        "resumed file == uninterrupted run"
    );

    // --shard I/3 over 3 shards: the whole set exactly once.
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    for i in 0..3 {
        let p = s.out.with_file_name(format!("shard{i}.jsonl"));
        ok(&mut s.run_cmd(&p, &["--shard", &format!("{i}/3")]));
        let recs = read_records(&p);
        assert!(!recs.is_empty() && recs.len() < s.n_docs);
        for r in comparable(recs) {
            let id = r["id"].as_str().unwrap().to_string();
            assert!(by_id.insert(id.clone(), r).is_none(), "{id} in two shards");
        }
    }
    // Each shard batches different articles together, so generated text may differ in the
    // last float bits from the full run's; the articles and their sentences may not.
    let full_by_id: BTreeMap<String, Value> = comparable(full)
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r))
        .collect();
    assert_eq!(
        by_id.keys().collect::<Vec<_>>(),
        full_by_id.keys().collect::<Vec<_>>()
    );
    for (id, r) in &by_id {
        let src = |v: &Value| -> Vec<Value> {
            v["sentences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| json!([s["text"], s["start"], s["end"]]))
                .collect()
        };
        assert_eq!(src(r), src(&full_by_id[id]), "{id}");
    }
}

#[test]
fn bad_articles_are_reported_and_the_run_goes_on() {
    let s = setup();
    let dir = s.input.parent().unwrap();
    let input = dir.join("mixed.jsonl");
    let long: String = (0..2000)
        .map(|i| format!("Đây là câu số {i}, một câu khá dài trong bài báo. "))
        .collect();
    std::fs::write(
        &input,
        format!(
            "{}\n{{broken\n{}\n{}\n{}\n",
            json!({"id": "ok", "text": "Hà Nội hôm nay mưa. Trời lạnh."}),
            json!({"id": "punct", "text": "... !!! ??? ,,,"}),
            json!({"id": "mixed", "text": "Apple ra mắt iPhone 16 tại Cupertino. The event was streamed online."}),
            json!({"id": "long", "text": long}),
        ),
    )
    .unwrap();
    let out = s.out.with_file_name("mixed-out.jsonl");
    let md = dir.join("md");
    let res = tomtat()
        .args(["run"])
        .arg(&input)
        .arg("--translator")
        .arg(&s.translator)
        .arg("--summarizer")
        .arg(&s.summarizer)
        .args(["--beams", "1", "-o"])
        .arg(&out)
        .arg("--markdown")
        .arg(&md)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("mixed.jsonl:2: malformed JSON"), "{stderr}");
    assert!(stderr.contains("run: 4 articles"), "run report: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let recs = read_records(&out);
    let ids: Vec<&str> = recs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["ok", "punct", "mixed", "long"]);
    assert!(md.join("ok.md").is_file() && md.join("long.md").is_file());
    let long_rec = &recs[3];
    assert!(long_rec["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().starts_with("chunked:")));

    // A model directory missing a file: a clear error, exit 2.
    let broken = dir.join("broken-model");
    std::fs::create_dir_all(&broken).unwrap();
    for f in std::fs::read_dir(&s.translator).unwrap() {
        let f = f.unwrap().path();
        if f.file_name().unwrap() != "model.safetensors" {
            std::fs::copy(&f, broken.join(f.file_name().unwrap())).unwrap();
        }
    }
    let res = tomtat()
        .args(["translate"])
        .arg(&input)
        .arg("--translator")
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("translator") && stderr.contains("weights"),
        "{stderr}"
    );
}
