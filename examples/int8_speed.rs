//! One-run speed table: candle f32 matmul vs int8 `QLinear` on the opus-mt-vi-en shapes.
//!
//! `cargo run --release --example int8_speed [-- REPS]` (uses the current rayon pool: set
//! RAYON_NUM_THREADS=N for N threads; the default here is 1). A second argument "M,K,N"
//! runs one shape; INT8_SKIP_F32=1 skips the f32 timing; INT8_KERNEL=avx-vnni|avx2|scalar
//! picks a slower int8 path.

use std::time::Instant;

use candle_core::{Device, Tensor};
use tomtat::kernels::int8::{Kernel, QLinear};

fn best_of<T>(reps: usize, mut f: impl FnMut() -> T) -> f64 {
    let _ = f();
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        std::hint::black_box(f());
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() -> anyhow::Result<()> {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build_global()?;
    }
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dev = Device::Cpu;
    println!(
        "threads {} kernels {:?} (INT8_KERNEL={:?})",
        rayon::current_num_threads(),
        Kernel::available(),
        std::env::var("INT8_KERNEL").ok()
    );
    println!(
        "{:>22} {:>10} {:>10} {:>10} {:>10} {:>7}",
        "shape m x k x n", "f32 ms", "f32 GF/s", "q8 ms", "q8 GOP/s", "ratio"
    );
    // Optional second argument "M,K,N" runs only that shape (for profiling).
    let only: Option<Vec<usize>> = std::env::args()
        .nth(2)
        .map(|s| s.split(',').filter_map(|v| v.parse().ok()).collect());
    let shapes = [
        (32, 512, 53739),
        (32, 512, 512),
        (32, 512, 2048),
        (960, 512, 2048),
        (128, 512, 512),
        (128, 512, 53739),
        (960, 2048, 512),
    ];
    for &(m, k, n) in &shapes {
        if only.as_ref().is_some_and(|o| o != &[m, k, n]) {
            continue;
        }
        let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
        let w = Tensor::randn(0f32, 0.05, (n, k), &dev)?;
        let b = Tensor::randn(0f32, 0.05, n, &dev)?;
        let wt = w.t()?;
        let f32_s = if std::env::var_os("INT8_SKIP_F32").is_some() {
            f64::NAN
        } else {
            best_of(reps, || x.matmul(&wt).unwrap().broadcast_add(&b).unwrap())
        };
        let mut q = QLinear::quantize(&w, Some(&b))?;
        // INT8_KERNEL=scalar|avx2|avx-vnni times a slower path instead of the detected one.
        match std::env::var("INT8_KERNEL").as_deref() {
            Ok("scalar") => q = q.with_kernel(Kernel::Scalar)?,
            Ok("avx2") => q = q.with_kernel(Kernel::Avx2)?,
            Ok("avx-vnni") => q = q.with_kernel(Kernel::AvxVnni)?,
            _ => {}
        }
        let q_s = best_of(reps, || q.forward(&x).unwrap());
        let ops = 2.0 * (m * k * n) as f64;
        println!(
            "{:>22} {:>10.3} {:>10.1} {:>10.3} {:>10.1} {:>7.2}",
            format!("{m}x{k}x{n}"),
            f32_s * 1e3,
            ops / f32_s / 1e9,
            q_s * 1e3,
            ops / q_s / 1e9,
            f32_s / q_s
        );
    }
    Ok(())
}
