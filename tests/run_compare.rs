//! `tomtat run --order compare`: both orders on the same articles, each one's cost in the run
//! report, the other order's brief in each record. Small random-weight models in real formats
//! (the BART summarizer stands in for the Vietnamese one: the weights are random anyway).

use std::process::Command;

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn tomtat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tomtat"))
}

#[test]
fn compare_reports_both_orders() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tok = |n: &str| format!("{ROOT}/tests/fixtures/tokenizers/{n}");
    for (arch, t, name) in [("marian", "marian-vi-en", "tr"), ("bart", "bart-bpe", "sm")] {
        let st = tomtat()
            .args([
                "random-model",
                "--arch",
                arch,
                "--tokenizer",
                &tok(t),
                "--out",
            ])
            .arg(d.join(name))
            .status()
            .unwrap();
        assert!(st.success());
    }
    let news =
        std::fs::read_to_string(format!("{ROOT}/../shared/data/vietnews/val300.jsonl")).unwrap();
    let input = d.join("in.jsonl");
    std::fs::write(
        &input,
        news.lines().take(3).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    let out_path = d.join("out.jsonl");
    let out = tomtat()
        .args(["--threads", "1", "run"])
        .arg(&input)
        .args([
            "--text-field",
            "body_sentences",
            "--beams",
            "1",
            "--order",
            "compare",
        ])
        .arg("--translator")
        .arg(d.join("tr"))
        .arg("--summarizer")
        .arg(d.join("sm"))
        .arg("--vi-summarizer")
        .arg(d.join("sm"))
        .arg("-o")
        .arg(&out_path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("orders: translate-first"), "{err}");
    assert!(err.contains("summarize-first: translate"), "{err}");
    let report: Value = serde_json::from_str(
        err.lines()
            .find_map(|l| l.strip_prefix("report: "))
            .expect("report line"),
    )
    .unwrap();
    for order in ["translate-first", "summarize-first"] {
        let o = &report["orders"][order];
        assert!(o["seconds"].as_f64().unwrap() > 0.0, "{report}");
        assert!(o["model_tokens"].as_u64().unwrap() > 0, "{report}");
    }
    let recs: Vec<Value> = std::fs::read_to_string(&out_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 3);
    for r in &recs {
        assert!(r["summary"].is_string(), "{r}");
        assert!(r["summary_summarize_first"].is_string(), "{r}");
        assert!(r["models"]["vi_summarizer"].is_object(), "{r}");
    }
}
