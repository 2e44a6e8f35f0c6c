//! The seven built-in models as published, through a fake Hub on 127.0.0.1: replicas of
//! the real repos (scripts/make_replica_hub.py: the real file names, config values and
//! serializations, legacy `pytorch_model.bin` included; small random weights), served at
//! the manifests' pinned revisions. Each built-in name downloads, loads and gives
//! transformers' `generate()` ids with the real generation settings; `tomtat run` with the
//! default model names runs end to end.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;
use common::fake_hub::FakeHub;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn expected() -> serde_json::Map<String, serde_json::Value> {
    let text = std::fs::read_to_string(fixtures().join("replicas/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Runs the binary against the fake Hub with an empty cache under `home`.
fn tomtat(hub: &FakeHub, home: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tomtat"))
        .args(args)
        .env("HF_ENDPOINT", &hub.url)
        .env("HF_HOME", home)
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_HUB_CACHE")
        .env_remove("HUGGINGFACE_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// VietNews articles `range` as a JSONL input file under `dir`.
fn vietnews(dir: &Path, range: std::ops::Range<usize>) -> PathBuf {
    let data =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/vietnews/val300.jsonl");
    let text = std::fs::read_to_string(&data).unwrap();
    let lines: Vec<&str> = text.lines().skip(range.start).take(range.len()).collect();
    let input = dir.join("in.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    input
}

/// `tomtat run INPUT --text-field body_sentences` (+ `extra`) through the fake Hub: the
/// records it wrote (the run must exit 0).
fn run_records(hub: &FakeHub, home: &Path, input: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = home.join("out.jsonl");
    let _ = std::fs::remove_file(&out);
    let mut args = vec![
        "-q",
        "run",
        input.to_str().unwrap(),
        "--text-field",
        "body_sentences",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, _, err) = tomtat(hub, home, &args, "");
    assert_eq!(code, 0, "{extra:?}: {err}");
    std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids_of(stdout: &str) -> Vec<Vec<u64>> {
    stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["ids"]
                .as_array()
                .unwrap_or_else(|| panic!("no ids in {l}"))
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect()
        })
        .collect()
}

fn id_lists(v: &serde_json::Value) -> Vec<Vec<u64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect()
        })
        .collect()
}

/// `tomtat generate --model NAME` on the texts (the default CLI path: manifest, download,
/// tokenizer with the manifest's prefix and source language, the model's own generation
/// settings) gives transformers' ids; so does `--ids` on transformers' source ids, which
/// tells a tokenizer difference from a model or search difference.
#[test]
fn every_builtin_gives_transformers_ids_through_the_hub() {
    let hub = FakeHub::start();
    hub.add_replicas(&fixtures());
    let home = tempfile::tempdir().unwrap();
    let expected = expected();
    assert_eq!(expected.len(), 7, "one entry per built-in manifest");
    let mut failures = Vec::new();
    for (name, e) in &expected {
        assert!(
            tomtat::hub::builtin_manifest(name).is_some(),
            "{name} is not a built-in"
        );
        let want = id_lists(&e["generated_ids"]);
        let texts: Vec<&str> = e["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let (code, out, err) = tomtat(
            &hub,
            home.path(),
            &["-q", "generate", "--model", name],
            &(texts.join("\n") + "\n"),
        );
        assert_eq!(code, 0, "{name}: {err}");
        let got = ids_of(&out);
        if got != want {
            failures.push(format!("{name} (text): got {got:?}\nwant {want:?}"));
        }
        let sources: Vec<String> = id_lists(&e["source_ids"])
            .iter()
            .map(|s| s.iter().map(u64::to_string).collect::<Vec<_>>().join(" "))
            .collect();
        let (code, out, err) = tomtat(
            &hub,
            home.path(),
            &["-q", "generate", "--model", name, "--ids"],
            &(sources.join("\n") + "\n"),
        );
        assert_eq!(code, 0, "{name} --ids: {err}");
        let got = ids_of(&out);
        if got != want {
            failures.push(format!("{name} (--ids): got {got:?}\nwant {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The main job with no model flags: the default translator and summarizer come from the
/// fake Hub at their pinned revisions (opus-mt-vi-en's legacy pytorch_model.bin included).
#[test]
fn run_with_the_default_models_through_the_hub() {
    let hub = FakeHub::start();
    hub.add_replicas(&fixtures());
    let home = tempfile::tempdir().unwrap();
    let input = vietnews(home.path(), 0..3);
    let records = run_records(&hub, home.path(), &input, &[]);
    assert_eq!(records.len(), 3);
    let pinned = |name: &str| tomtat::hub::builtin_manifest(name).unwrap().revision;
    let mut sentences = Vec::new();
    let mut translations = Vec::new();
    for r in &records {
        assert!(r.get("error").is_none(), "{r}");
        for s in r["sentences"].as_array().unwrap() {
            sentences.push(s["text"].as_str().unwrap().to_string());
            translations.push(s["translation"].as_str().unwrap().to_string());
        }
        assert!(r["summary"].is_string(), "{r}");
        assert!(r["translation"].is_string(), "{r}");
        let models = r["models"].to_string();
        assert!(models.contains(&pinned("opus-mt-vi-en")), "{models}");
        assert!(models.contains(&pinned("distilbart-cnn-12-6")), "{models}");
    }
    // The run's sentence translations are what `generate` (checked against transformers
    // above) writes for each sentence, whatever batches the run cut.
    let (code, out, err) = tomtat(
        &hub,
        home.path(),
        &["-q", "generate", "--model", "opus-mt-vi-en"],
        &(sentences.join("\n") + "\n"),
    );
    assert_eq!(code, 0, "{err}");
    let texts: Vec<String> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap().trim().to_string()
        })
        .collect();
    assert_eq!(texts.len(), translations.len());
    let differ: Vec<usize> = (0..texts.len())
        .filter(|&i| texts[i] != translations[i])
        .collect();
    assert!(
        differ.is_empty(),
        "{} of {} sentences differ, e.g. {:?} vs {:?}",
        differ.len(),
        texts.len(),
        differ.first().map(|&i| &texts[i]),
        differ.first().map(|&i| &translations[i])
    );
}

/// Every other built-in name in the main job: each translator and summarizer (and the
/// Vietnamese summarizer of `--order summarize-first`) downloads and runs end to end.
#[test]
fn run_with_every_builtin_through_the_hub() {
    let hub = FakeHub::start();
    hub.add_replicas(&fixtures());
    let home = tempfile::tempdir().unwrap();
    let input = vietnews(home.path(), 5..6);
    let runs: [&[&str]; 4] = [
        &[
            "--translator",
            "envit5-translation",
            "--summarizer",
            "flan-t5-base",
        ],
        &[
            "--translator",
            "vinai-translate-vi2en-v2",
            "--summarizer",
            "bart-large-cnn",
        ],
        &[
            "--order",
            "summarize-first",
            "--summarizer",
            "vit5-base-vietnews-summarization",
        ],
        &[
            "--order",
            "compare",
            "--vi-summarizer",
            "vit5-base-vietnews-summarization",
        ],
    ];
    for extra in runs {
        let records = run_records(&hub, home.path(), &input, extra);
        let r = &records[0];
        assert!(r.get("error").is_none(), "{extra:?}: {r}");
        assert!(r["summary"].is_string(), "{extra:?}: {r}");
        let models = r["models"].to_string();
        for name in extra
            .iter()
            .filter(|a| !a.starts_with("--") && !["summarize-first", "compare"].contains(*a))
        {
            assert!(models.contains(name), "{extra:?}: {models}");
        }
    }
}
