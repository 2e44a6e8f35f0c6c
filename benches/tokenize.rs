//! Tokenizing 10,000 sentences (IWSLT15 tst2012, vi + en lines, repeated) with each tokenizer
//! kind, through `encode_batch` (rayon).
//!
//!     cargo bench --bench tokenize

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use tomtat::tokenize::Tokenizer;

fn sentences() -> Vec<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut base = Vec::new();
    for f in ["tst2012.vi", "tst2012.en"] {
        let p = root.join("../shared/data/iwslt15").join(f);
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        base.extend(text.lines().map(str::to_string));
    }
    base.iter().cycle().take(10_000).cloned().collect()
}

fn bench(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fx = root.join("tests/fixtures/tokenizers");
    let dirs = [
        (
            "opus-mt-en-mg",
            root.join("../shared/data/tokenizers/opus-mt-en-mg"),
        ),
        ("marian-vi-en", fx.join("marian-vi-en")),
        ("t5-spiece", fx.join("t5-spiece")),
        ("mbart-spm", fx.join("mbart-spm")),
        ("bart-bpe", fx.join("bart-bpe")),
    ];
    let sents = sentences();
    let refs: Vec<&str> = sents.iter().map(String::as_str).collect();
    let mut g = c.benchmark_group("encode_batch_10k");
    g.sample_size(10);
    for (name, dir) in dirs {
        let tok = Tokenizer::from_dir(&dir).unwrap();
        g.bench_function(name, |b| b.iter(|| tok.encode_batch(&refs).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
