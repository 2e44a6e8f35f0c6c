//! `tomtat split` end to end through the real binary: good and bad documents side by side.

use std::io::Write;
use std::process::{Command, Stdio};

fn tomtat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tomtat"))
}

fn run_stdin(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = tomtat()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tomtat");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn bad_documents_are_reported_and_others_still_come_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("a_good.txt"),
        "Hà Nội mưa to. Đường ngập.\n\nĐoạn hai.",
    )
    .unwrap();
    std::fs::write(d.join("b_badutf8.txt"), b"Xin ch\xe0o \xff\xfe.").unwrap();
    std::fs::write(d.join("c_empty.txt"), "  \n\n ").unwrap();
    // A 50 MB article is over the default limit: refused with a clear error, never truncated.
    let big = "Một câu rất dài. ".repeat(50 * 1024 * 1024 / 20);
    std::fs::write(d.join("d_huge.txt"), &big).unwrap();
    std::fs::write(
        d.join("e_lines.jsonl"),
        "{\"id\":\"j1\",\"text\":\"Câu một. Câu hai.\",\"title\":\"T\"}\n{broken json\n{\"id\":\"j3\",\"text\":\"Ba.\"}\n",
    )
    .unwrap();
    let missing = d.join("nope.txt");
    let out = tomtat().arg("split").arg(d).arg(&missing).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let ids: Vec<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, ["a_good", "j1", "j3"]);
    assert!(
        stderr.contains("b_badutf8.txt: invalid UTF-8 at byte"),
        "{stderr}"
    );
    assert!(stderr.contains("c_empty.txt: empty article"), "{stderr}");
    assert!(stderr.contains("d_huge.txt: article is"), "{stderr}");
    assert!(
        stderr.contains("e_lines.jsonl:2: malformed JSON"),
        "{stderr}"
    );
    assert!(
        stderr.contains("nope.txt: no such file or directory"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Passthrough fields are kept, in place after the id.
    let j1: serde_json::Value = serde_json::from_str(stdout.lines().nth(1).unwrap()).unwrap();
    assert_eq!(j1["title"], "T");
    assert!(j1["paragraphs"].is_array());
}

#[test]
fn offsets_index_the_nfc_text_by_chars() {
    // Decomposed input: offsets refer to the NFC text, counted in chars.
    let text = "Vie\u{0302}\u{0323}t Nam đẹp lắm.\nCâu thứ hai ở đây.";
    let (code, stdout, stderr) = run_stdin(&["split", "-"], text.as_bytes());
    assert_eq!(code, 0, "{stderr}");
    let rec: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let nfc: String = "Việt Nam đẹp lắm.\nCâu thứ hai ở đây.".into();
    let chars: Vec<char> = nfc.chars().collect();
    let paras = rec["paragraphs"].as_array().unwrap();
    assert_eq!(paras.len(), 2);
    for s in paras.iter().flat_map(|p| p.as_array().unwrap()) {
        let (a, b) = (
            s["start"].as_u64().unwrap() as usize,
            s["end"].as_u64().unwrap() as usize,
        );
        let sub: String = chars[a..b].iter().collect();
        assert_eq!(sub, s["text"].as_str().unwrap());
    }
}

#[test]
fn stdin_jsonl_and_lines_format() {
    let input = "{\"id\":\"x\",\"text\":\"Một. Hai.\"}\n{\"id\":\"y\",\"text\":\"Ba.\"}\n";
    let (code, stdout, _) = run_stdin(&["split", "-", "--format", "lines"], input.as_bytes());
    assert_eq!(code, 0);
    assert!(stdout.lines().count() >= 2);
    assert!(stdout.lines().last().unwrap().contains("Ba."));
}

#[test]
fn repeated_ids_are_made_unique_and_reported() {
    let input = "{\"id\":\"x\",\"text\":\"Một.\"}\n{\"id\":\"x\",\"text\":\"Hai.\"}\n";
    let (code, stdout, stderr) = run_stdin(&["split", "-"], input.as_bytes());
    assert_eq!(code, 0, "{stderr}");
    let ids: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].to_string())
        .collect();
    assert_eq!(ids, ["\"x\"", "\"x#2\""]);
    assert!(
        stderr.contains("warning: duplicate-id: an earlier article has the id \"x\""),
        "{stderr}"
    );
    let (_, _, quiet) = run_stdin(&["-q", "split", "-"], input.as_bytes());
    assert!(!quiet.contains("warning"), "{quiet}");
}

#[test]
fn help_mentions_examples() {
    let out = tomtat().arg("--help").output().unwrap();
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("Examples:") && s.contains("split"), "{s}");
    let out = tomtat().args(["split", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The CNN/DailyMail sample as its dataset ships it: a CSV with a pandas index column, the
/// article in `article`, multi-line quoted `highlights`.
#[test]
fn csv_input_reads_the_cnndm_sample() {
    let csv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/cnndm/cnndm-100.csv"
    );
    let out = tomtat()
        .args(["split", csv, "--text-field", "article"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let recs: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 100);
    let ids: std::collections::HashSet<&str> =
        recs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 100, "ids come from the id column");
    assert!(ids.iter().all(|id| id.len() == 40), "{ids:?}");
    for r in &recs {
        assert!(r["highlights"].as_str().is_some_and(|h| !h.is_empty()));
        assert!(r["paragraphs"][0].as_array().is_some_and(|p| p.len() > 1));
        assert!(r.get("").is_none(), "the unnamed index column is dropped");
    }
    // without --text-field: one error naming the columns, exit 1
    let out = tomtat().args(["split", csv]).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no column \"text\" in the CSV header (columns: id, article, highlights)"),
        "{stderr}"
    );
}
