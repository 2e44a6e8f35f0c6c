//! Downloads against a fake Hugging Face Hub on 127.0.0.1: the endpoints and headers
//! hf-hub 0.4's sync API uses, plus injectable failures (HTTP errors, dropped connections,
//! short bodies). No network beyond loopback.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;
use common::fake_hub::{FakeHub, Fault};

use candle_core::{DType, Device};
use tomtat::hub::{self, HubError, HubOptions, WeightFiles};

// ---------------------------------------------------------------------------------------
// A tiny generated model.

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const SHA2: &str = "89abcdef0123456789abcdef0123456789abcdef";

fn st_bytes(tensors: &[(&str, Vec<f32>, Vec<usize>)]) -> Vec<u8> {
    let datas: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, v, s)| {
            (
                n.to_string(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                s.clone(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = datas
        .iter()
        .map(|(n, d, s)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None::<HashMap<String, String>>).unwrap()
}

fn bart_config() -> Vec<u8> {
    serde_json::json!({
        "model_type": "bart",
        "architectures": ["BartForConditionalGeneration"],
        "d_model": 16, "encoder_layers": 1, "decoder_layers": 1,
        "vocab_size": 64, "max_position_embeddings": 32
    })
    .to_string()
    .into_bytes()
}

/// ~64 KB of weights so a dropped connection really is mid-file.
fn weights() -> Vec<u8> {
    st_bytes(&[
        (
            "model.shared.weight",
            (0..16_000).map(|i| i as f32 * 0.5).collect(),
            vec![1000, 16],
        ),
        ("final_logits_bias", vec![1.0, 2.0, 3.0], vec![1, 3]),
    ])
}

fn tiny_bart(hub: &FakeHub, id: &str) {
    hub.add_repo(
        id,
        SHA,
        &["main"],
        &[
            ("config.json", bart_config()),
            ("generation_config.json", br#"{"num_beams": 4}"#.to_vec()),
            ("vocab.json", br#"{"<s>": 0, "</s>": 2}"#.to_vec()),
            ("merges.txt", b"#version: 0.2\n".to_vec()),
            ("model.safetensors", weights()),
            // Present in the repo, never needed: must not be downloaded.
            ("README.md", b"# tiny".to_vec()),
            ("tf_model.h5", vec![7u8; 2000]),
        ],
    );
}

fn opts(hub_url: &str, home: &Path) -> HubOptions {
    HubOptions {
        endpoint: hub_url.to_string(),
        cache_dir: home.join("hub"),
        token: None,
        offline: false,
        revision: None,
        progress: false,
        retries: 0,
        retry_wait: Duration::from_millis(10),
    }
}

fn snapshot(home: &Path, repo: &str, sha: &str) -> PathBuf {
    home.join("hub")
        .join(format!("models--{}", repo.replace('/', "--")))
        .join("snapshots")
        .join(sha)
}

fn blobs(home: &Path, repo: &str) -> PathBuf {
    home.join("hub")
        .join(format!("models--{}", repo.replace('/', "--")))
        .join("blobs")
}

fn part_files(home: &Path, repo: &str) -> Vec<PathBuf> {
    std::fs::read_dir(blobs(home, repo))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "part"))
                .collect()
        })
        .unwrap_or_default()
}

fn first_value(dir: &hub::ModelDir, name: &str) -> Vec<f32> {
    let vb = hub::load_weights(dir, DType::F32, &Device::Cpu).unwrap();
    vb.get_unchecked(name)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Tests.

#[test]
fn download_lands_in_the_standard_cache_layout() {
    let hub = FakeHub::start();
    tiny_bart(&hub, "tiny/bart");
    let home = tempfile::tempdir().unwrap();
    let o = opts(&hub.url, home.path());
    let r = hub::resolve_with_report("tiny/bart", &o).unwrap();
    let snap = snapshot(home.path(), "tiny/bart", SHA);
    assert_eq!(r.dir.root, snap);
    assert_eq!(r.dir.commit.as_deref(), Some(SHA));
    assert_eq!(r.dir.revision.as_deref(), Some("main"));
    assert!(r.manifest.is_none());
    // refs/main -> sha, snapshot entries are relative links into blobs/.
    let refs = home.path().join("hub/models--tiny--bart/refs/main");
    assert_eq!(std::fs::read_to_string(refs).unwrap(), SHA);
    for f in [
        "config.json",
        "generation_config.json",
        "vocab.json",
        "merges.txt",
        "model.safetensors",
    ] {
        let p = snap.join(f);
        let link = std::fs::read_link(&p).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(link.starts_with("../../blobs"), "{f} -> {}", link.display());
        assert!(p.is_file());
    }
    assert_eq!(
        std::fs::read(snap.join("model.safetensors")).unwrap(),
        weights()
    );
    assert!(!snap.join("README.md").exists() && !snap.join("tf_model.h5").exists());
    assert!(part_files(home.path(), "tiny/bart").is_empty());
    assert!(r.files.iter().all(|f| !f.cached));
    assert_eq!(r.files.len(), 5);
    // Unneeded files were never requested.
    let paths: Vec<String> = hub.log().into_iter().map(|l| l.path).collect();
    assert!(!paths
        .iter()
        .any(|p| p.contains("README") || p.contains("tf_model")));
    // The LFS file came through the CDN redirect.
    assert!(paths.iter().any(|p| p.starts_with("/cdn/")));
    assert!(matches!(r.dir.files.weights, WeightFiles::Safetensors(_)));
    assert_eq!(r.dir.config.arch, hub::Arch::Bart);
    assert_eq!(r.dir.config.json["d_model"], 16);
    assert_eq!(
        first_value(&r.dir, "final_logits_bias"),
        vec![1.0, 2.0, 3.0]
    );
}

#[test]
fn second_download_is_a_cache_hit() {
    let hub = FakeHub::start();
    tiny_bart(&hub, "tiny/bart");
    let home = tempfile::tempdir().unwrap();
    let o = opts(&hub.url, home.path());
    hub::resolve("tiny/bart", &o).unwrap();
    assert!(!hub.file_requests().is_empty());
    hub.clear_log();
    let r = hub::resolve_with_report("tiny/bart", &o).unwrap();
    assert!(r.files.iter().all(|f| f.cached));
    assert_eq!(hub.file_requests().len(), 0, "{:?}", hub.log());
    assert_eq!(hub.log().len(), 1, "only the repo listing");
    // A pinned commit sha with a complete snapshot needs no request at all.
    hub.clear_log();
    hub::resolve(&format!("tiny/bart@{SHA}"), &o).unwrap();
    assert_eq!(hub.log().len(), 0, "{:?}", hub.log());
}

#[test]
fn http_500_gives_a_clear_error_and_no_snapshot_file() {
    let hub = FakeHub::start();
    tiny_bart(&hub, "tiny/bart");
    hub.fail(
        "model.safetensors",
        &[Fault::Status(500), Fault::Status(500)],
    );
    let home = tempfile::tempdir().unwrap();
    let mut o = opts(&hub.url, home.path());
    o.retries = 1;
    let e = hub::resolve("tiny/bart", &o).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, HubError::Download { .. }), "{msg}");
    for needle in [
        "tiny/bart@main",
        "model.safetensors",
        "HTTP 500",
        "2 attempts",
    ] {
        assert!(msg.contains(needle), "`{needle}` not in: {msg}");
    }
    let snap = snapshot(home.path(), "tiny/bart", SHA);
    assert!(!snap.join("model.safetensors").exists());
    assert!(std::fs::symlink_metadata(snap.join("model.safetensors")).is_err());
    // The failures are gone: the next run completes.
    let r = hub::resolve("tiny/bart", &o).unwrap();
    assert_eq!(
        std::fs::read(r.1.root.join("model.safetensors")).unwrap(),
        weights()
    );
}

#[test]
fn dropped_connection_fails_cleanly_then_resumes() {
    let hub = FakeHub::start();
    tiny_bart(&hub, "tiny/bart");
    hub.fail("model.safetensors", &[Fault::DropMidBody]);
    let home = tempfile::tempdir().unwrap();
    let o = opts(&hub.url, home.path());
    let msg = hub::resolve("tiny/bart", &o).unwrap_err().to_string();
    assert!(
        msg.contains("tiny/bart@main") && msg.contains("model.safetensors"),
        "{msg}"
    );
    let snap = snapshot(home.path(), "tiny/bart", SHA);
    assert!(std::fs::symlink_metadata(snap.join("model.safetensors")).is_err());
    let parts = part_files(home.path(), "tiny/bart");
    assert_eq!(parts.len(), 1, "{parts:?}");
    let partial = std::fs::metadata(&parts[0]).unwrap().len();
    assert!(partial > 0 && (partial as usize) < weights().len());

    hub.clear_log();
    let (_, dir) = hub::resolve("tiny/bart", &o).unwrap();
    assert_eq!(
        std::fs::read(dir.root.join("model.safetensors")).unwrap(),
        weights()
    );
    let resumed = format!("bytes={partial}-");
    assert!(
        hub.log()
            .iter()
            .any(|l| l.range.as_deref() == Some(resumed.as_str())),
        "no resumed range request: {:?}",
        hub.log()
    );
    assert!(part_files(home.path(), "tiny/bart").is_empty());
    assert_eq!(first_value(&dir, "final_logits_bias"), vec![1.0, 2.0, 3.0]);
}

#[test]
fn retries_resume_within_one_call() {
    let hub = FakeHub::start();
    tiny_bart(&hub, "tiny/bart");
    hub.fail(
        "model.safetensors",
        &[Fault::DropMidBody, Fault::DropMidBody],
    );
    let home = tempfile::tempdir().unwrap();
    let mut o = opts(&hub.url, home.path());
    o.retries = 2;
    let (_, dir) = hub::resolve("tiny/bart", &o).unwrap();
    assert_eq!(
        std::fs::read(dir.root.join("model.safetensors")).unwrap(),
        weights()
    );
    let resumed = hub
        .log()
        .iter()
        .filter(|l| {
            l.range
                .as_deref()
                .is_some_and(|r| r != "bytes=0-" && r != "bytes=0-0")
        })
        .count();
    assert!(resumed >= 2, "{:?}", hub.log());
}

#[test]
fn short_body_without_length_never_lands_in_the_snapshot() {
    let hub = FakeHub::start();
    tiny_bart(&hub, "tiny/bart");
    hub.fail("model.safetensors", &[Fault::ShortNoLength]);
    let home = tempfile::tempdir().unwrap();
    let o = opts(&hub.url, home.path());
    let msg = hub::resolve("tiny/bart", &o).unwrap_err().to_string();
    assert!(
        msg.contains("incomplete") && msg.contains("model.safetensors"),
        "{msg}"
    );
    let snap = snapshot(home.path(), "tiny/bart", SHA);
    assert!(std::fs::symlink_metadata(snap.join("model.safetensors")).is_err());
    assert_eq!(part_files(home.path(), "tiny/bart").len(), 1);
    let (_, dir) = hub::resolve("tiny/bart", &o).unwrap();
    assert_eq!(
        std::fs::read(dir.root.join("model.safetensors")).unwrap(),
        weights()
    );
}

#[test]
fn offline_with_empty_cache_names_repo_revision_and_file() {
    let hub = FakeHub::start();
    tiny_bart(&hub, "tiny/bart");
    let home = tempfile::tempdir().unwrap();
    let mut o = opts(&hub.url, home.path());
    o.offline = true;
    let e = hub::resolve("tiny/bart@v1.0", &o).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, HubError::NotCached { .. }), "{msg}");
    for needle in ["tiny/bart", "v1.0", "config.json", "offline"] {
        assert!(msg.contains(needle), "`{needle}` not in: {msg}");
    }
    assert!(hub.log().is_empty(), "offline touched the network");
}

#[test]
fn offline_with_warm_cache_works_and_names_missing_files() {
    let hub = FakeHub::start();
    tiny_bart(&hub, "tiny/bart");
    let home = tempfile::tempdir().unwrap();
    let mut o = opts(&hub.url, home.path());
    let (_, online) = hub::resolve("tiny/bart", &o).unwrap();
    hub.clear_log();
    o.offline = true;
    let r = hub::resolve_with_report("tiny/bart", &o).unwrap();
    assert_eq!(r.dir.root, online.root);
    assert_eq!(r.dir.files, online.files);
    assert!(r.files.iter().all(|f| f.cached));
    assert!(hub.log().is_empty());
    // A file deleted from the cache: offline says which one.
    let blob = std::fs::canonicalize(online.root.join("merges.txt")).unwrap();
    std::fs::remove_file(blob).unwrap();
    let msg = hub::resolve("tiny/bart", &o).unwrap_err().to_string();
    assert!(
        msg.contains("tiny/bart@main") && msg.contains("merges.txt"),
        "{msg}"
    );
    // Online, the broken link is repaired by downloading the file again.
    o.offline = false;
    hub::resolve("tiny/bart", &o).unwrap();
    assert!(online.root.join("merges.txt").is_file());
}

#[test]
fn unreachable_hub_falls_back_to_a_complete_cache() {
    let home = tempfile::tempdir().unwrap();
    let url = {
        let hub = FakeHub::start();
        tiny_bart(&hub, "tiny/bart");
        hub::resolve("tiny/bart", &opts(&hub.url, home.path())).unwrap();
        hub.url.clone()
    };
    // The server is gone: connection refused.
    let (_, dir) = hub::resolve("tiny/bart", &opts(&url, home.path())).unwrap();
    assert_eq!(dir.commit.as_deref(), Some(SHA));
    // Nothing cached for another repo: the network error is reported.
    let msg = hub::resolve("tiny/other", &opts(&url, home.path()))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("tiny/other@main") && msg.contains("cannot reach"),
        "{msg}"
    );
}

#[test]
fn sharded_safetensors_on_a_pr_revision() {
    let hub = FakeHub::start();
    let s1 = st_bytes(&[("a", vec![1.0, 2.0], vec![2])]);
    let s2 = st_bytes(&[("b", vec![3.0; 4], vec![2, 2])]);
    let index = serde_json::json!({
        "metadata": {"total_size": 24},
        "weight_map": {"a": "model-00001-of-00002.safetensors",
                       "b": "model-00002-of-00002.safetensors"}
    })
    .to_string();
    hub.add_repo(
        "tiny/sharded",
        SHA2,
        &["main", "refs/pr/1"],
        &[
            ("config.json", bart_config()),
            ("tokenizer.json", br#"{"version":"1.0"}"#.to_vec()),
            ("model.safetensors.index.json", index.into_bytes()),
            ("model-00001-of-00002.safetensors", s1),
            ("model-00002-of-00002.safetensors", s2),
            ("pytorch_model.bin", vec![0u8; 100]),
        ],
    );
    let home = tempfile::tempdir().unwrap();
    let o = opts(&hub.url, home.path());
    let (_, dir) = hub::resolve("tiny/sharded@refs/pr/1", &o).unwrap();
    // The revision is URL-encoded on the wire; refs/pr/1 is a nested ref file in the cache.
    assert!(hub.log().iter().any(|l| l.path.contains("refs%2Fpr%2F1")));
    let r = home.path().join("hub/models--tiny--sharded/refs/refs/pr/1");
    assert_eq!(std::fs::read_to_string(r).unwrap(), SHA2);
    let WeightFiles::ShardedSafetensors { shards, .. } = &dir.files.weights else {
        panic!("{:?}", dir.files.weights)
    };
    assert_eq!(shards.len(), 2);
    assert!(!dir.root.join("pytorch_model.bin").exists());
    assert_eq!(first_value(&dir, "a"), vec![1.0, 2.0]);
    assert_eq!(first_value(&dir, "b"), vec![3.0; 4]);
    // --revision overrides the one in the spec.
    let mut o2 = o.clone();
    o2.revision = Some("nope".into());
    let msg = hub::resolve("tiny/sharded@refs/pr/1", &o2)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("tiny/sharded@nope") && msg.contains("404"),
        "{msg}"
    );
}

#[test]
fn pytorch_bin_only_repo() {
    let hub = FakeHub::start();
    let bin = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/hub/pytorch_model.bin"
    ))
    .unwrap();
    hub.add_repo(
        "tiny/marian",
        SHA,
        &["main"],
        &[
            (
                "config.json",
                br#"{"model_type":"marian","architectures":["MarianMTModel"]}"#.to_vec(),
            ),
            ("source.spm", vec![1u8; 10]),
            ("target.spm", vec![2u8; 10]),
            ("vocab.json", b"{}".to_vec()),
            ("tokenizer_config.json", b"{}".to_vec()),
            ("pytorch_model.bin", bin),
        ],
    );
    let home = tempfile::tempdir().unwrap();
    let (_, dir) = hub::resolve("tiny/marian", &opts(&hub.url, home.path())).unwrap();
    assert!(matches!(dir.files.weights, WeightFiles::PytorchBin(_)));
    assert!(dir.files.tokenizer.source_spm.is_some());
    assert!(dir.files.tokenizer.tokenizer_config.is_some());
    assert_eq!(
        first_value(&dir, "model.a.weight"),
        vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    );
}

#[test]
fn repos_missing_pieces_fail_before_big_downloads() {
    let hub = FakeHub::start();
    hub.add_repo(
        "tiny/noweights",
        SHA,
        &["main"],
        &[
            ("config.json", bart_config()),
            ("tokenizer.json", b"{}".to_vec()),
            ("tf_model.h5", vec![0u8; 10]),
        ],
    );
    hub.add_repo(
        "tiny/notok",
        SHA,
        &["main"],
        &[
            ("config.json", br#"{"model_type":"t5"}"#.to_vec()),
            ("model.safetensors", weights()),
        ],
    );
    hub.add_repo(
        "tiny/pegasus",
        SHA,
        &["main"],
        &[
            (
                "config.json",
                br#"{"model_type":"pegasus","architectures":["PegasusForConditionalGeneration"]}"#
                    .to_vec(),
            ),
            ("tokenizer.json", b"{}".to_vec()),
            ("model.safetensors", weights()),
        ],
    );
    let home = tempfile::tempdir().unwrap();
    let o = opts(&hub.url, home.path());
    let msg = hub::resolve("tiny/noweights", &o).unwrap_err().to_string();
    for needle in [
        "tiny/noweights@main",
        "no usable weights",
        "tf_model.h5",
        "refs/pr/N",
    ] {
        assert!(msg.contains(needle), "`{needle}` not in: {msg}");
    }
    let msg = hub::resolve("tiny/notok", &o).unwrap_err().to_string();
    assert!(
        msg.contains("tiny/notok@main") && msg.contains("spiece.model"),
        "{msg}"
    );
    hub.clear_log();
    let e = hub::resolve("tiny/pegasus", &o).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, HubError::UnknownArchitecture { .. }), "{msg}");
    for needle in [
        "pegasus",
        "PegasusForConditionalGeneration",
        "marian, bart, mbart, t5",
    ] {
        assert!(msg.contains(needle), "`{needle}` not in: {msg}");
    }
    assert!(
        !hub.log()
            .iter()
            .any(|l| l.path.contains("model.safetensors") || l.path.starts_with("/cdn/")),
        "weights were fetched for an unsupported model"
    );
}

#[test]
fn unknown_repo_and_revision_say_so() {
    let hub = FakeHub::start();
    tiny_bart(&hub, "tiny/bart");
    let home = tempfile::tempdir().unwrap();
    let o = opts(&hub.url, home.path());
    let msg = hub::resolve("nobody/nothing", &o).unwrap_err().to_string();
    assert!(
        msg.contains("nobody/nothing@main")
            && msg.contains("HTTP 404")
            && msg.contains("Repository not found"),
        "{msg}"
    );
    let msg = hub::resolve("tiny/bart@v9", &o).unwrap_err().to_string();
    assert!(
        msg.contains("tiny/bart@v9") && msg.contains("Invalid rev id"),
        "{msg}"
    );
}

#[test]
fn user_manifest_points_at_a_hub_repo() {
    let hub = FakeHub::start();
    tiny_bart(&hub, "tiny/bart");
    let home = tempfile::tempdir().unwrap();
    let o = opts(&hub.url, home.path());
    let m = home.path().join("tiny.toml");
    let text = format!(
        r#"name = "tiny"
repo = "tiny/bart"
revision = "{SHA}"
architecture = "bart"
tokenizer = "bart"
task = "summarize-en"
max_input_tokens = 32
[generation]
num_beams = 2
max_length = 20
"#
    );
    std::fs::write(&m, &text).unwrap();
    let (man, dir) = hub::resolve(m.to_str().unwrap(), &o).unwrap();
    let man = man.unwrap();
    assert_eq!(man.name, "tiny");
    assert_eq!(man.generation.num_beams, 2);
    assert_eq!(dir.commit.as_deref(), Some(SHA));
    // The manifest must agree with config.json.
    std::fs::write(
        &m,
        text.replace("architecture = \"bart\"", "architecture = \"t5\""),
    )
    .unwrap();
    let msg = hub::resolve(m.to_str().unwrap(), &o)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("t5") && msg.contains("bart"), "{msg}");
}

/// A manifest's `safetensors_revision` (the Hub's conversion PR): its model.safetensors is
/// downloaded instead of the pinned revision's pytorch_model.bin, which is never fetched;
/// the cache then serves both offline. Without the PR the .bin is used.
#[test]
fn manifest_prefers_the_safetensors_pr_over_a_pinned_bin() {
    let hub = FakeHub::start();
    let bin = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/hub/legacy_pytorch_model.bin"
    ))
    .unwrap();
    let base = [
        ("config.json", bart_config()),
        ("vocab.json", br#"{"<s>": 0, "</s>": 2}"#.to_vec()),
        ("merges.txt", b"#version: 0.2\n".to_vec()),
    ];
    let mut pinned = base.to_vec();
    pinned.push(("pytorch_model.bin", bin));
    hub.add_repo("tiny/old", SHA, &[], &pinned);
    let mut pr = pinned.clone();
    pr.push(("model.safetensors", weights()));
    hub.add_repo("tiny/old", SHA2, &["main", "refs/pr/18"], &pr);
    let home = tempfile::tempdir().unwrap();
    let mut o = opts(&hub.url, home.path());
    let m = home.path().join("old.toml");
    let manifest = |pr: &str| {
        format!(
            r#"name = "old"
repo = "tiny/old"
revision = "{SHA}"
safetensors_revision = "{pr}"
architecture = "bart"
tokenizer = "bart"
task = "summarize-en"
max_input_tokens = 32
[generation]
max_length = 20
"#
        )
    };
    std::fs::write(&m, manifest("refs/pr/18")).unwrap();
    let (_, dir) = hub::resolve(m.to_str().unwrap(), &o).unwrap();
    let WeightFiles::Safetensors(st) = &dir.files.weights else {
        panic!("{:?}", dir.files.weights)
    };
    assert!(
        st.starts_with(snapshot(home.path(), "tiny/old", SHA2)),
        "{st:?}"
    );
    assert_eq!(dir.commit.as_deref(), Some(SHA));
    assert!(dir.root.starts_with(snapshot(home.path(), "tiny/old", SHA)));
    let got: Vec<String> = hub.file_requests().into_iter().map(|l| l.path).collect();
    assert!(
        !got.iter().any(|p| p.contains("pytorch_model.bin")),
        "{got:?}"
    );
    assert_eq!(first_value(&dir, "model.shared.weight")[..2], [0.0, 0.5]);
    // offline, from the cache alone
    o.offline = true;
    let (_, again) = hub::resolve(m.to_str().unwrap(), &o).unwrap();
    assert_eq!(again.files.weights, dir.files.weights);
    // no such PR: the pinned revision's own (legacy) .bin
    o.offline = false;
    std::fs::write(&m, manifest("refs/pr/99")).unwrap();
    let (_, dir) = hub::resolve(m.to_str().unwrap(), &o).unwrap();
    assert!(
        matches!(dir.files.weights, WeightFiles::PytorchBin(_)),
        "{:?}",
        dir.files.weights
    );
    assert_eq!(
        first_value(&dir, "model.a.weight"),
        vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    );
}

// ---------------------------------------------------------------------------------------
// The real binary.

fn tomtat(home: &Path, hub_url: &str, args: &[&str], offline: bool) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tomtat"));
    c.args(args)
        .env("HF_HOME", home)
        .env("HF_ENDPOINT", hub_url)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE");
    if offline {
        c.env("HF_HUB_OFFLINE", "1");
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn binary_models_download_info_list() {
    let hub = FakeHub::start();
    tiny_bart(&hub, "tiny/bart");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();

    let (code, out, err) = tomtat(h, &hub.url, &["models", "download", "tiny/bart"], false);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let snap = snapshot(h, "tiny/bart", SHA);
    assert!(out.contains(&snap.display().to_string()), "{out}");
    assert!(
        out.contains("downloaded") && out.contains("model.safetensors"),
        "{out}"
    );
    assert!(out.contains("total: 5 files"), "{out}");
    assert!(snap.join("model.safetensors").is_file());

    hub.clear_log();
    let (code, out, _) = tomtat(h, &hub.url, &["models", "download", "tiny/bart"], false);
    assert_eq!(code, 0);
    assert!(
        out.contains("cached") && !out.contains("downloaded  "),
        "{out}"
    );
    assert!(hub.file_requests().is_empty());

    // Offline with a warm cache (env var), then with an empty one (flag).
    let (code, out, err) = tomtat(
        h,
        "http://127.0.0.1:9",
        &["models", "download", "tiny/bart"],
        true,
    );
    assert_eq!(code, 0, "{out}{err}");
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = tomtat(
        empty.path(),
        &hub.url,
        &["models", "download", "--offline", "tiny/bart"],
        false,
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("tiny/bart@main") && err.contains("config.json") && err.contains("offline"),
        "{err}"
    );

    // One good name, one bad: partial failure.
    let (code, _, err) = tomtat(
        h,
        &hub.url,
        &["models", "download", "tiny/bart", "nobody/nothing"],
        false,
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("nobody/nothing"), "{err}");

    let (code, out, _) = tomtat(h, &hub.url, &["models", "list"], false);
    assert_eq!(code, 0);
    for m in hub::builtin_manifests() {
        assert!(out.contains(&m.name) && out.contains(&m.repo), "{out}");
    }
    let (code, out, _) = tomtat(h, &hub.url, &["models", "info", "flan-t5-base"], false);
    assert_eq!(code, 0);
    assert!(
        out.contains("google/flan-t5-base")
            && out.contains("not cached")
            && out.contains("summarize: "),
        "{out}"
    );
    let (code, out, _) = tomtat(h, &hub.url, &["models", "info", "tiny/bart"], false);
    assert_eq!(code, 0);
    assert!(
        out.contains("cached: tiny/bart@main") && out.contains("model.safetensors"),
        "{out}"
    );
}
