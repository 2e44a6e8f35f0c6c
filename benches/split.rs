//! Splitter throughput on Vietnamese news: vietnews val300 bodies (../shared/data) repeated to
//! about 4 MB. `cargo bench --bench split`; throughput is reported in bytes/s.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tomtat::text::{normalize, split_paragraphs, split_sentences};

const TARGET_BYTES: usize = 4 << 20;

/// Article bodies, one per line, repeated to about [`TARGET_BYTES`].
fn corpus() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/vietnews/val300.jsonl"
    );
    let raw = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let mut bodies = String::new();
    for line in raw.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{path}: {e}"));
        let sentences = v["body_sentences"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let body: Vec<&str> = sentences.iter().filter_map(|s| s.as_str()).collect();
        bodies.push_str(&body.join(" "));
        bodies.push('\n');
    }
    assert!(!bodies.is_empty(), "{path}: no bodies");
    let mut text = String::with_capacity(TARGET_BYTES + bodies.len());
    while text.len() < TARGET_BYTES {
        text.push_str(&bodies);
    }
    text
}

fn bench(c: &mut Criterion) {
    let text = corpus();
    let mut g = c.benchmark_group("split");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.sample_size(10);
    g.measurement_time(std::time::Duration::from_secs(4));
    g.bench_function("split_sentences", |b| {
        b.iter(|| split_sentences(&text).len())
    });
    g.bench_function("split_paragraphs", |b| {
        b.iter(|| split_paragraphs(&text).len())
    });
    g.bench_function("normalize_nfc_fast_path", |b| {
        b.iter(|| normalize(&text).len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
