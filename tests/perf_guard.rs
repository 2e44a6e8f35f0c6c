//! Regression guard for engine speed that does not time anything: valgrind's callgrind counts
//! the instructions of the real binary's decoding loop, which is repeatable on a noisy shared
//! machine (wall-clock tests are not). Two runs that differ only in the number of generated
//! tokens cancel loading and the encoder; what is left is the cost of a decoder step, compared
//! with `tests/perf_guard_baseline.json`.
//!
//! Under valgrind the CPU reports no AVX-512, so the count is that of the AVX2 kernels on
//! every x86-64 machine. valgrind missing: the test says so and passes (`.ci/run` installs it).

use std::path::Path;
use std::process::Command;

const TOLERANCE: f64 = 1.3;

fn instructions(beams: usize, new_tokens: usize) -> u64 {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(env!("CARGO_BIN_EXE_tomtat"))
        .args(["bench", "--model"])
        .arg(Path::new(root).join("tests/fixtures/models/marian"))
        .args([
            "--batch",
            "8",
            "--src-len",
            "12",
            "--runs",
            "1",
            "--threads-list",
            "1",
        ])
        .args([
            "--beams",
            &beams.to_string(),
            "--new-tokens",
            &new_tokens.to_string(),
        ])
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("run valgrind");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "valgrind run failed:\n{err}");
    let line = err
        .lines()
        .find(|l| l.contains("Collected :"))
        .unwrap_or_else(|| panic!("no callgrind total in:\n{err}"));
    line.rsplit(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("bad callgrind line {line}"))
}

/// Instructions per decoder step: bench runs generate twice (warm-up + 1 run).
fn per_step(beams: usize) -> f64 {
    let (short, long) = (8, 24);
    let diff = instructions(beams, long) as f64 - instructions(beams, short) as f64;
    diff / (2 * (long - short)) as f64
}

#[test]
fn decoder_step_instruction_count_stays_near_baseline() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("perf_guard: valgrind is not installed; SKIPPED (apt-get install valgrind)");
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/perf_guard_baseline.json");
    let text = std::fs::read_to_string(&path).expect("read baseline");
    let mut base: serde_json::Value = serde_json::from_str(&text).expect("baseline json");
    let mut failures = vec![];
    for (key, beams) in [("greedy_per_step", 1), ("beam4_per_step", 4)] {
        let got = per_step(beams);
        let want = base[key].as_f64().expect("baseline number");
        eprintln!(
            "perf_guard: {key}: {got:.0} instructions (baseline {want:.0}, {:.2}x)",
            got / want
        );
        if std::env::var_os("TOMTAT_PERF_GUARD_UPDATE").is_some() {
            base[key] = serde_json::json!((got / 1000.0).round() * 1000.0);
        } else if got > want * TOLERANCE {
            failures.push(format!(
                "{key}: {got:.0} > {TOLERANCE} x baseline {want:.0}"
            ));
        } else if got < want * 0.7 {
            eprintln!("perf_guard: {key} is much cheaper than its baseline: lower the baseline");
        }
    }
    if std::env::var_os("TOMTAT_PERF_GUARD_UPDATE").is_some() {
        let text = serde_json::to_string_pretty(&base).expect("json") + "\n";
        std::fs::write(&path, text).expect("write baseline");
    }
    assert!(failures.is_empty(), "decoder got slower: {failures:?}");
}
