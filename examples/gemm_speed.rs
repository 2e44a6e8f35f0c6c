//! Same-run GFLOP/s of candle's matmul and tomtat's packed f32 GEMM on the engine's shapes
//! (1 thread unless RAYON_NUM_THREADS says otherwise):
//! `cargo run --release --example gemm_speed`.
use std::time::Instant;

use candle_core::{Device, Tensor};
use tomtat::model::linear::Linear;

fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() / reps as f64
}

fn main() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // one compute thread (candle sizes its own parallelism from this variable too)
        std::env::set_var("RAYON_NUM_THREADS", "1");
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build_global()
            .expect("thread pool");
    }
    println!(
        "f32 GEMM kernel: {}; {}",
        tomtat::kernels::gemm::kernel_name(),
        tomtat::kernels::cpu::describe()
    );
    let d = Device::Cpu;
    let shapes = [
        (32usize, 512usize, 53739usize),
        (32, 512, 512),
        (32, 512, 2048),
        (32, 2048, 512),
        (128, 512, 512),
        (960, 512, 2048),
        (960, 2048, 512),
        (1024, 1024, 4096),
        (1024, 4096, 1024),
        (1024, 1024, 1024),
        (8, 1024, 50264),
        // opus-mt beam 4
        (128, 512, 2048),
        (128, 2048, 512),
        (128, 512, 53739),
        // distilbart beam 4 (8 sources)
        (32, 1024, 4096),
        (32, 4096, 1024),
        // bart-base beam 4 (32 sources x 4 beams)
        (128, 768, 768),
        (128, 768, 3072),
        (128, 3072, 768),
        (128, 768, 50265),
    ];
    println!("| m x k x n | candle GFLOP/s | packed GFLOP/s | ratio |");
    println!("|---|---:|---:|---:|");
    for (m, k, n) in shapes {
        let x = Tensor::randn(0f32, 1., (m, k), &d).unwrap();
        // enough distinct weights (>= 256 MB) that they come from memory, as in a decoder step
        let copies = (256 * 1024 * 1024 / (4 * n * k)).clamp(1, 64);
        let (mut dense, mut packed) = (Vec::new(), Vec::new());
        for _ in 0..copies {
            let w = Tensor::randn(0f32, 1., (n, k), &d).unwrap();
            dense.push(Linear::dense(w.clone(), None));
            packed.push(Linear::prepared(w, None, false).unwrap());
        }
        let (mut i, mut j) = (0, 0);
        let reps = ((4e9 / (m * k * n) as f64) as usize).clamp(3, 2000);
        let flop = 2.0 * (m * k * n) as f64;
        // interleave to share the machine's noise
        let (mut a, mut b) = (0.0, 0.0);
        for _ in 0..3 {
            a += time(reps, || {
                i = (i + 1) % copies;
                drop(dense[i].forward(&x).unwrap())
            });
            b += time(reps, || {
                j = (j + 1) % copies;
                drop(packed[j].forward(&x).unwrap())
            });
        }
        let (ga, gb) = (3.0 * flop / a / 1e9, 3.0 * flop / b / 1e9);
        println!("| {m} x {k} x {n} | {ga:.1} | {gb:.1} | {:.2} |", gb / ga);
    }
}
