//! With the `cuda` feature, compile tomtat's own CUDA kernels (src/kernels/cuda/kernels.cu) to
//! PTX with nvcc ($NVCC, else `nvcc` on PATH) for compute capability $CUDA_COMPUTE_CAP
//! (default 80; the driver JIT-compiles PTX for newer GPUs). Without the feature: nothing.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/kernels/cuda/kernels.cu");
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let nvcc = std::env::var("NVCC").unwrap_or_else(|_| "nvcc".into());
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "80".into());
    let cap: String = cap.chars().filter(|c| c.is_ascii_digit()).collect();
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", "--std=c++17"])
        .arg(format!("-arch=sm_{cap}"))
        .arg("--output-directory")
        .arg(&out)
        .arg("src/kernels/cuda/kernels.cu")
        .status()
        .unwrap_or_else(|e| panic!("cuda feature: cannot run {nvcc}: {e}"));
    assert!(
        status.success(),
        "cuda feature: {nvcc} failed on kernels.cu"
    );
    assert!(
        out.join("kernels.ptx").exists(),
        "nvcc wrote no kernels.ptx"
    );
}
