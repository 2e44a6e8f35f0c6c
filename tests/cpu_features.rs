//! The kernels' choice from a CPU's *real* flags, on CPUs this machine is not: the release
//! binary runs under `qemu-x86_64 -cpu MODEL` (user-mode emulation, whose cpuid reports that
//! model's flags), e.g. an AMD EPYC Milan (AVX2 + FMA, no AVX-512, no VNNI) and a Nehalem (no
//! AVX at all). `TOMTAT_CPU_ISA` caps are a different thing (tests/bench_cli.rs): here the
//! detection itself is under test, and every path must give the native run's outputs.
//!
//! Needs `qemu-x86_64` (Debian: qemu-user; `.ci/run` installs it). Without it the test is
//! skipped with a message, except under CI (`CI` set), where it fails.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const MARIAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/marian");

fn qemu() -> Option<&'static str> {
    let ok = Command::new("qemu-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some("qemu-x86_64");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "qemu-x86_64 is missing (Debian package qemu-user); CI must install it"
    );
    eprintln!("skipped: qemu-x86_64 not installed (apt-get install qemu-user)");
    None
}

/// `tomtat ARGS` natively (`cpu` None) or under qemu with that CPU model; stdin fed.
fn tomtat(cpu: Option<&str>, args: &[&str], stdin: &str) -> Output {
    let bin = env!("CARGO_BIN_EXE_tomtat");
    let mut cmd = match cpu {
        Some(model) => {
            let mut c = Command::new("qemu-x86_64");
            c.args(["-cpu", model, bin]);
            c
        }
        None => Command::new(bin),
    };
    // the detection alone decides: no caps from the environment
    cmd.env_remove("TOMTAT_CPU_ISA")
        .env_remove("TOMTAT_NO_AVX512")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn tomtat");
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("tomtat output");
    assert!(
        out.status.success(),
        "{cpu:?} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn fixture_sources() -> String {
    let text = std::fs::read_to_string(format!("{MARIAN}/generate.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let sources: Vec<Vec<u32>> = serde_json::from_value(v["sources"].clone()).unwrap();
    sources
        .iter()
        .map(|s| s.iter().map(u32::to_string).collect::<Vec<_>>().join(" ") + "\n")
        .collect()
}

/// (qemu CPU model, the flags tomtat must report, f32 GEMM kernel, int8 kernel)
const CPUS: [(&str, &str, &str, &str); 2] = [
    (
        "EPYC-Milan",
        "CPU flags: avx2+fma)",
        "f32 AVX2+FMA (6x16)",
        "int8 AVX2",
    ),
    (
        "Nehalem",
        "CPU flags: none (portable code))",
        "f32 portable",
        "int8 scalar",
    ),
];

#[test]
fn kernels_follow_the_real_cpu_flags_and_agree_with_the_native_run() {
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        return;
    }
    let Some(_) = qemu() else { return };
    let src = fixture_sources();
    fn gen<'a>(q: &'a str, beams: &'a str) -> Vec<&'a str> {
        let mut a = vec!["generate", "--model", MARIAN, "--ids", "--beams", beams];
        a.extend(["--max-new-tokens", "24", "--quantize", q]);
        a
    }
    for (cpu, flags, f32_kernel, int8_kernel) in CPUS {
        for (q, want) in [("none", f32_kernel), ("q8", int8_kernel)] {
            let mut args = vec!["bench", "--shape", "tiny-marian", "--quantize", q];
            args.extend(["--beams", "2", "--threads-list", "1", "--runs", "1"]);
            args.extend(["--batch", "4", "--src-len", "9", "--new-tokens", "6"]);
            let out = tomtat(Some(cpu), &args, "");
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            assert!(stdout.contains(&format!("| {want} |")), "{cpu}: {stdout}");
            assert!(stderr.contains(flags), "{cpu}: {stderr}");
            assert!(!stderr.contains("capped"), "{cpu}: {stderr}");
        }
        // every kernel path computes the same numbers: the same ids as the native run
        for (q, beams) in [("none", "1"), ("none", "4"), ("q8", "1"), ("q8", "4")] {
            let native = tomtat(None, &gen(q, beams), &src);
            let emulated = tomtat(Some(cpu), &gen(q, beams), &src);
            assert!(!native.stdout.is_empty());
            assert_eq!(
                String::from_utf8_lossy(&emulated.stdout),
                String::from_utf8_lossy(&native.stdout),
                "{cpu} --quantize {q} --beams {beams}"
            );
        }
    }
}
