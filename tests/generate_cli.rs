//! `tomtat generate` end to end: the real binary on the Marian fixture, stdin ids in, JSON
//! Lines out, compared with transformers' beam-4 free-running ids.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const MARIAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/marian");

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tomtat"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tomtat");
    // A command that fails before reading stdin closes the pipe: a write error is fine then.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    child.wait_with_output().expect("tomtat output")
}

fn fixture() -> Value {
    let text = std::fs::read_to_string(format!("{MARIAN}/generate.json")).expect("generate.json");
    serde_json::from_str(&text).expect("json")
}

fn as_ids(v: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).expect("ids")
}

fn records(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .expect("utf-8 stdout")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// `generate: N tokens in S s (R tok/s)`, the last stderr line.
fn timing_line(out: &Output) -> (usize, f64, f64) {
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    let parts: Vec<&str> = last.split_whitespace().collect();
    assert_eq!(parts.len(), 8, "timing line: {last:?}");
    assert_eq!(
        (parts[0], parts[2], parts[3], parts[5], parts[7]),
        ("generate:", "tokens", "in", "s", "tok/s)"),
        "{last}"
    );
    let n = parts[1].parse().expect("N");
    let secs = parts[4].parse().expect("S");
    let rate = parts[6]
        .strip_prefix('(')
        .and_then(|r| r.parse().ok())
        .expect("R");
    (n, secs, rate)
}

#[test]
fn binary_matches_transformers_beam4() {
    let fx = fixture();
    let sources = as_ids(&fx["sources"]);
    let want = as_ids(&fx["settings"]["beam4_free"]["output_ids"]);
    let input: String = sources
        .iter()
        .map(|s| s.iter().map(u32::to_string).collect::<Vec<_>>().join(" ") + "\n")
        .collect();
    // --batch-size 5: several generate() calls, output still in input order.
    let out = run(
        &[
            "generate",
            "--model",
            MARIAN,
            "--ids",
            "--beams",
            "4",
            "--max-new-tokens",
            "40",
            "--batch-size",
            "5",
        ],
        &input,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = records(&out);
    assert_eq!(recs.len(), sources.len());
    let mut same = 0;
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["line"], i + 1);
        if as_ids(&Value::Array(vec![r["ids"].clone()]))[0] == want[i] {
            same += 1;
        }
    }
    println!(
        "marian beam4 free via the binary: {same}/{} identical",
        want.len()
    );
    assert_eq!(same, want.len());
    let (n, secs, rate) = timing_line(&out);
    assert_eq!(n, want.iter().map(Vec::len).sum::<usize>());
    assert!(secs > 0.0 && rate > 0.0);
}

#[test]
fn binary_defaults_come_from_the_model() {
    // Model defaults: num_beams 4, max_length 512 (capped at the 64 decoder positions), forced EOS.
    let fx = fixture();
    let sources = as_ids(&fx["sources"]);
    let line: String = sources[2]
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    let out = run(
        &["generate", "--model", MARIAN, "--ids"],
        &format!("{line}\n"),
    );
    assert_eq!(out.status.code(), Some(0));
    let recs = records(&out);
    let ids = as_ids(&Value::Array(vec![recs[0]["ids"].clone()]));
    // Beam 4 ended by EOS well before 40 tokens in the fixture: the same with a larger limit.
    let want = as_ids(&fx["settings"]["beam4_free"]["output_ids"]);
    assert_eq!(ids[0], want[2]);
}

#[test]
fn bad_lines_get_error_records_and_exit_1() {
    let out = run(
        &[
            "generate",
            "--model",
            MARIAN,
            "--ids",
            "--beams",
            "1",
            "--max-new-tokens",
            "5",
        ],
        "5 6 0\n\n7 x\n99999\n8 9 0\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let recs = records(&out);
    assert_eq!(recs.len(), 5);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["line"], i + 1);
        let ok = r.get("ids").is_some();
        assert_eq!(ok, i == 0 || i == 4, "record {i}: {r}");
        assert_eq!(r.get("error").is_some(), !ok);
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("line 4"), "{err}");
    timing_line(&out);
}

#[test]
fn usage_and_model_errors_exit_2() {
    let out = run(
        &["generate", "--model", "/nonexistent/model", "--ids"],
        "5\n",
    );
    assert_eq!(out.status.code(), Some(2));
    // --quantize q8 runs (its accuracy is checked in tests/q8_accuracy.rs).
    let out = run(
        &["generate", "--model", MARIAN, "--ids", "--quantize", "q8"],
        "5\n",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        &["generate", "--model", MARIAN, "--ids", "--beams", "0"],
        "5\n",
    );
    assert_eq!(out.status.code(), Some(2));
}
