//! `tomtat bench` end to end on tiny models: the table and the JSON rows are there and
//! consistent with the options. No timing assertions (only that work was measured).

use std::process::Command;

fn bench(args: &[&str]) -> (String, Vec<serde_json::Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_tomtat"))
        .arg("bench")
        .args(args)
        .output()
        .expect("running tomtat bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tomtat bench failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 stdout");
    let json_line = stdout
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("json: "))
        .unwrap_or_else(|| panic!("no `json: ` last line in:\n{stdout}"));
    let rows: Vec<serde_json::Value> = serde_json::from_str(json_line).expect("JSON rows");
    (stdout, rows)
}

fn check_rows(rows: &[serde_json::Value], threads: &[u64], beams: &[u64]) {
    assert_eq!(rows.len(), threads.len() * beams.len());
    let mut i = 0;
    for &t in threads {
        for &b in beams {
            let r = &rows[i];
            i += 1;
            assert_eq!(r["threads"], t, "{r}");
            assert_eq!(r["beams"], b, "{r}");
            assert_eq!(r["batch"], 2);
            assert_eq!(r["src_len"], 5);
            assert_eq!(r["new_tokens"], 4);
            assert_eq!(r["runs"], 1);
            for key in [
                "median_s",
                "tokens_per_s",
                "encoder_ms",
                "decoder_ms_per_step",
            ] {
                let v = r[key]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{key} missing: {r}"));
                assert!(v.is_finite() && v >= 0.0, "{key} = {v}");
            }
            assert!(r["tokens_per_s"].as_f64().unwrap() > 0.0, "{r}");
            assert!(r["median_s"].as_f64().unwrap() > 0.0, "{r}");
            assert!(r.get("peak_rss_mb").is_some(), "{r}");
        }
    }
}

const TINY: [&str; 8] = [
    "--batch",
    "2",
    "--src-len",
    "5",
    "--new-tokens",
    "4",
    "--runs",
    "1",
];

#[test]
fn bench_random_tiny_marian_prints_table_and_json_file() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("rows.json");
    let mut args = vec![
        "--shape",
        "tiny-marian",
        "--beams",
        "1,2",
        "--threads-list",
        "1,2",
    ];
    args.extend(TINY);
    let json_arg = json_path.to_str().unwrap().to_string();
    args.extend(["--json", &json_arg]);
    let (stdout, rows) = bench(&args);
    for col in [
        "| model |",
        "tokens/s",
        "encoder ms",
        "decoder ms/step",
        "peak RSS MB",
    ] {
        assert!(stdout.contains(col), "no {col:?} in:\n{stdout}");
    }
    assert_eq!(stdout.matches("| tiny-marian |").count(), 4, "{stdout}");
    check_rows(&rows, &[1, 2], &[1, 2]);
    assert_eq!(rows[0]["model"], "tiny-marian");
    let file: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(file, rows);
}

/// `TOMTAT_CPU_ISA` caps every kernel together, and the row names the one that ran.
#[test]
fn bench_names_the_kernel_and_honours_the_isa_cap() {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    let mut cases = vec![
        ("scalar", "none", "f32 portable"),
        ("scalar", "q8", "int8 scalar"),
    ];
    if has("avx2") && has("fma") {
        cases.push(("avx2", "none", "f32 AVX2+FMA (6x16)"));
        cases.push(("avx2", "q8", "int8 AVX2"));
    }
    if has("avx2") && has("fma") && has("avx_vnni") {
        cases.push(("avx-vnni", "q8", "int8 AVX-VNNI"));
    }
    if has("avx512f") && has("avx512bw") && has("avx512_vnni") {
        cases.push(("avx512", "q8", "int8 AVX-512 VNNI"));
    }
    for (isa, quantize, want) in cases {
        let mut args = vec!["bench", "--shape", "tiny-marian", "--beams", "2"];
        args.extend(["--threads-list", "1", "--quantize", quantize]);
        args.extend(TINY);
        let out = Command::new(env!("CARGO_BIN_EXE_tomtat"))
            .args(&args)
            .env("TOMTAT_CPU_ISA", isa)
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{isa} {quantize}: {stderr}");
        let json = stdout
            .lines()
            .last()
            .unwrap()
            .strip_prefix("json: ")
            .unwrap();
        let rows: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
        assert_eq!(rows[0]["kernel"], want, "{isa} {quantize}: {stdout}");
        assert!(stdout.contains(&format!("| {want} |")), "{stdout}");
        assert!(stderr.contains("CPU flags:"), "{stderr}");
        if isa != "avx512" {
            assert!(stderr.contains("(capped to: "), "{stderr}");
        }
    }
}

#[test]
fn bench_fixture_model_dir() {
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/marian");
    let mut args = vec!["--model", model, "--beams", "3", "--threads-list", "1"];
    args.extend(TINY);
    let (_, rows) = bench(&args);
    check_rows(&rows, &[1], &[3]);
}

#[test]
fn bench_rejects_bad_options() {
    for args in [
        vec!["--shape", "tiny"],
        vec!["--shape", "nope"],
        vec![],
        vec!["--shape", "tiny-t5", "--model", "x"],
        vec!["--shape", "tiny-t5", "--beams", "0"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tomtat"))
            .arg("bench")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// `--inputs`: the sources are the file's ids (rows x longest length in the row), both JSON
/// forms; a bad file is a usage error naming the problem.
#[test]
fn bench_inputs_file() {
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/marian");
    let dir = std::env::temp_dir().join(format!("tomtat-bench-inputs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let obj = dir.join("obj.json");
    std::fs::write(&obj, r#"{"ids": [[5, 6, 7, 0], [8, 9, 0]], "tokens": []}"#).unwrap();
    let list = dir.join("list.json");
    std::fs::write(&list, "[[5, 6, 0], [7, 0], [9, 9, 9, 9, 9, 0]]").unwrap();
    for (file, rows, len) in [(&obj, 2, 4), (&list, 3, 6)] {
        let path = file.to_str().unwrap();
        let args = [
            "--model",
            model,
            "--inputs",
            path,
            "--beams",
            "1,2",
            "--threads-list",
            "1",
            "--new-tokens",
            "3",
            "--runs",
            "1",
            "-q",
        ];
        let (_, out) = bench(&args);
        assert_eq!(out.len(), 2);
        for r in &out {
            assert_eq!(r["batch"], rows);
            assert_eq!(r["src_len"], len);
            assert_eq!(r["runs_s"].as_array().map(Vec::len), Some(1));
        }
    }
    let bad = dir.join("bad.json");
    for (text, want) in [
        ("[[1, 2], []]", "source 1 is empty"),
        ("[[1, 99999999]]", "out of the vocabulary"),
        ("{\"x\": 1}", "list of token id lists"),
    ] {
        std::fs::write(&bad, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_tomtat"))
            .args([
                "bench",
                "--model",
                model,
                "--inputs",
                bad.to_str().unwrap(),
                "-q",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(want), "{text}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
