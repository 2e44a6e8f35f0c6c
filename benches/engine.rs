//! Engine micro-benchmarks on a tiny random Marian model: one encoder pass over a batch and
//! one decoder step (KV cache included). `cargo bench --bench engine`; a few seconds in all.

use candle_core::Tensor;
use criterion::{criterion_group, criterion_main, Criterion};
use tomtat::testkit::random_model::{write_random_model, RandomSpec, Shape, Variant};

const BATCH: usize = 8;
const SRC_LEN: usize = 30;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    write_random_model(&RandomSpec::new(Variant::Marian, Shape::Tiny), dir.path())
        .expect("writing the random model");
    let spec = dir.path().to_str().expect("UTF-8 temp dir");
    let loaded = tomtat::pipeline::engine::load_model(
        spec,
        &tomtat::pipeline::engine::EngineOptions::default(),
        false,
    )
    .expect("loading the model");
    let (model, device) = (loaded.model, loaded.device);
    let vocab = model.vocab_size() as u32;
    // Ids 4.. are ordinary tokens in every family; the values do not change the cost.
    let ids: Vec<u32> = (0..BATCH * SRC_LEN)
        .map(|i| 4 + (i as u32 * 7919) % (vocab - 8))
        .collect();
    let ids = Tensor::from_vec(ids, (BATCH, SRC_LEN), &device).unwrap();
    let mask = Tensor::ones((BATCH, SRC_LEN), candle_core::DType::U8, &device).unwrap();

    let mut g = c.benchmark_group("engine");
    g.sample_size(20);
    g.measurement_time(std::time::Duration::from_secs(3));
    g.bench_function("encode 8x30 tiny-marian", |b| {
        b.iter(|| model.encode(&ids, &mask).unwrap())
    });
    let enc = model.encode(&ids, &mask).unwrap();
    let tokens = vec![5u32; BATCH];
    g.bench_function("decoder step 8 rows tiny-marian", |b| {
        // A fresh decoder per batch of steps keeps the cache within its preallocated length.
        b.iter_batched_ref(
            || {
                let mut d = model.start_decoder(&enc, 64).unwrap();
                d.step(&tokens).unwrap();
                d
            },
            |d| d.step(&tokens).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
