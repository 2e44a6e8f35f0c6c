//! Int8 `QLinear` vs candle's f32 matmul on opus-mt-vi-en shapes, on one rayon thread.
//! `cargo bench --bench int8`; about 20 s in all. For a one-shot GOP/s table see
//! `examples/int8_speed.rs`.

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tomtat::kernels::int8::QLinear;

fn bench(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("thread pool");
    let dev = Device::Cpu;
    let mut g = c.benchmark_group("int8");
    g.sample_size(10);
    g.warm_up_time(std::time::Duration::from_millis(500));
    g.measurement_time(std::time::Duration::from_secs(2));
    for &(m, k, n) in &[(32, 512, 53739), (32, 512, 2048), (960, 512, 2048)] {
        let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
        let w = Tensor::randn(0f32, 0.05, (n, k), &dev).unwrap();
        let wt = w.t().unwrap();
        let q = QLinear::quantize(&w, None).unwrap();
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        g.bench_function(format!("f32 {m}x{k}x{n}"), |b| {
            pool.install(|| b.iter(|| x.matmul(&wt).unwrap()))
        });
        g.bench_function(format!("q8 {m}x{k}x{n}"), |b| {
            pool.install(|| b.iter(|| q.forward(&x).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
