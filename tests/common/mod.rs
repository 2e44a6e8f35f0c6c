//! Helpers shared by the fixture-based test binaries (model, generation, q8 and GPU parity):
//! the random-weight model fixtures of `scripts/make_model_fixtures.py` and the tensor
//! comparisons their checks use.
#![allow(dead_code)] // each test binary uses a subset

pub mod fake_hub;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, D};

pub const FAMILIES: [&str; 5] = ["marian", "bart", "mbart", "t5", "t5v11"];

/// A family's fixture directory; TOMTAT_ROOT (a checkout's root) overrides the build-time
/// path, for test binaries carried to another machine (scripts/gpu_bundle.sh).
pub fn fixture_dir(family: &str) -> PathBuf {
    let root = std::env::var_os("TOMTAT_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    root.join("tests/fixtures/models").join(family)
}

/// transformers' outputs for a family's fixture inputs (`expected.safetensors`).
pub fn expected(family: &str, dev: &Device) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture_dir(family).join("expected.safetensors"), dev).unwrap()
}

/// Largest absolute value of `t`.
pub fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Largest absolute difference of two tensors of the same shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    max_abs(&(a - b).unwrap())
}

/// Max abs diff over the real (unpadded) positions of `[b, s, d]` tensors (`mask` `[b, s]`);
/// `a` may be half precision.
pub fn masked_diff(a: &Tensor, b: &Tensor, mask: &Tensor) -> f32 {
    let a = a.to_dtype(DType::F32).unwrap();
    let m = mask.to_dtype(DType::F32).unwrap().unsqueeze(2).unwrap();
    max_abs(&(a - b).unwrap().broadcast_mul(&m).unwrap())
}

/// Index of the largest value along the last dimension, flattened.
pub fn argmax_ids(t: &Tensor) -> Vec<u32> {
    t.argmax(D::Minus1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Fraction of positions where `a` and `b` agree (over `a`'s length).
pub fn agreement(a: &[u32], b: &[u32]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64
}
