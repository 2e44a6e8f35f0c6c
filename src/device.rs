//! Where models run, shared by every command: `--device cpu|cuda[:N]`, `--dtype
//! auto|f32|f16|bf16`, and batch limits that fit the GPU's free memory.

use candle_core::{DType, Device};
use clap::{Args, ValueEnum};

use crate::batch::BatchLimits;
use crate::model::{Arch, ModelConfig};

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("bad device '{0}': use cpu, cuda or cuda:N")]
    Bad(String),
    #[error(
        "device {0}: built without the `cuda` feature; rebuild with \
         `cargo build --release --features cuda`"
    )]
    NoCudaFeature(String),
    #[error("device {device}: {msg}")]
    Cuda { device: String, msg: String },
}

/// Weight and activation dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum DTypeArg {
    /// f32 on CPU; on CUDA f16, or bf16 for T5-family models.
    #[default]
    Auto,
    F32,
    F16,
    Bf16,
}

/// `--device` and `--dtype`, for commands that load one model (`generate`, `bench`).
#[derive(Debug, Clone, Args)]
pub struct DeviceArgs {
    /// cpu, or cuda[:N] (needs a build with --features cuda).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: String,
    /// Weights/activations: auto = f32 on CPU; on CUDA f16 (10 mantissa bits, closest to
    /// f32 results), but bf16 for T5-family models, whose activations overflow f16.
    #[arg(long, value_enum, default_value_t = DTypeArg::Auto)]
    pub dtype: DTypeArg,
}

/// A parsed `--device` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
}

/// `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
pub fn parse_spec(s: &str) -> Result<DeviceSpec, DeviceError> {
    let t = s.trim();
    if t == "cpu" {
        return Ok(DeviceSpec::Cpu);
    }
    match t.strip_prefix("cuda") {
        Some("") => Ok(DeviceSpec::Cuda(0)),
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .map(DeviceSpec::Cuda)
            .ok_or_else(|| DeviceError::Bad(s.to_string())),
        None => Err(DeviceError::Bad(s.to_string())),
    }
}

/// Opens the device `s` names. Without the `cuda` feature, `cuda[:N]` is a clear error.
pub fn parse_device(s: &str) -> Result<Device, DeviceError> {
    match parse_spec(s)? {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Cuda(n) => open_cuda(s.trim(), n),
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(name: &str, ordinal: usize) -> Result<Device, DeviceError> {
    let device = Device::new_cuda(ordinal).map_err(|e| DeviceError::Cuda {
        device: name.to_string(),
        msg: format!(
            "{e} (needs an NVIDIA GPU, its driver and the CUDA runtime libraries this build \
             links: CUDA 13, or 12 when built with TOMTAT_CUDA_MAJOR=12)"
        ),
    })?;
    if let Device::Cuda(dev) = &device {
        if !crate::knobs::knobs().cuda_events {
            // cudarc creates two CUDA events with every buffer (and destroys them with it) to
            // order uses across streams; candle's device runs on one stream and never creates
            // another, so they are never waited on, only paid for: 4 driver calls per tensor,
            // ~200 tensors per decoding step.
            // SAFETY: everything runs on this device's one stream; no tensor crosses streams.
            unsafe { dev.disable_event_tracking() };
        }
    }
    Ok(device)
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(name: &str, _ordinal: usize) -> Result<Device, DeviceError> {
    Err(DeviceError::NoCudaFeature(name.to_string()))
}

/// The dtype to load a model in (auto picks bf16 for T5).
pub fn resolve_dtype(arg: DTypeArg, device: &Device, config: &ModelConfig) -> DType {
    match arg {
        DTypeArg::F32 => DType::F32,
        DTypeArg::F16 => DType::F16,
        DTypeArg::Bf16 => DType::BF16,
        DTypeArg::Auto if device.is_cpu() => DType::F32,
        DTypeArg::Auto => {
            if config.arch == Arch::T5 {
                DType::BF16
            } else {
                DType::F16
            }
        }
    }
}

/// Short name for reports: `f32`, `f16`, `bf16`.
pub fn dtype_name(dtype: DType) -> &'static str {
    dtype.as_str()
}

/// Free and total bytes of the device's memory; `None` on CPU.
pub fn memory_info(device: &Device) -> Option<(usize, usize)> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(dev) = device {
        return dev.cuda_stream().context().mem_get_info().ok();
    }
    let _ = device;
    None
}

/// What one batch costs in device memory beyond the weights, from the model's shapes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemProfile {
    /// Bytes per padded source token (encoder activations incl. attention scores over the
    /// longest source, cross-attention K/V for every beam).
    pub per_token: u64,
    /// Bytes per source row (self-attention cache preallocated for `max_len` positions for
    /// every beam, twice while rows are reordered; f32 + model-dtype logits).
    pub per_row: u64,
}

impl MemProfile {
    pub fn new(
        cfg: &ModelConfig,
        dtype: DType,
        beams: usize,
        max_len: usize,
        max_src: usize,
    ) -> Self {
        let b = dtype.size_in_bytes() as u64;
        let k = beams.max(1) as u64;
        let d = cfg.d_model as u64;
        let ld = cfg.decoder_layers as u64;
        let enc_inner = (cfg.encoder_heads * cfg.encoder_head_dim) as u64;
        let dec_inner = (cfg.decoder_heads * cfg.decoder_head_dim) as u64;
        // encoder: a few live [tokens, d] / [tokens, ffn] buffers, and scores + probs
        let encoder = b * (6 * d.max(enc_inner) + 2 * cfg.encoder_ffn_dim as u64)
            + 3 * b * cfg.encoder_heads as u64 * max_src as u64;
        let cross = k * ld * 2 * dec_inner * b;
        let self_cache = 2 * k * ld * 2 * dec_inner * b * max_len as u64;
        let logits = k * cfg.decoder_vocab_size as u64 * (b + 4) * 2;
        MemProfile {
            per_token: encoder + cross,
            per_row: self_cache + logits,
        }
    }

    /// Bytes a batch of `rows` x `width` padded tokens needs.
    pub fn batch_bytes(&self, rows: usize, width: usize) -> u64 {
        rows as u64 * self.per_row + (rows * width) as u64 * self.per_token
    }

    /// `limits` shrunk so a full batch fits in `free` bytes (keeping 25% of it as headroom for
    /// the allocator and cuBLAS workspaces). Never below one row of `min_width` tokens.
    pub fn fit(&self, limits: BatchLimits, free: u64, min_width: usize) -> BatchLimits {
        let usable = free / 4 * 3;
        let mut rows = limits.max_rows.max(1);
        while rows > 1 && self.batch_bytes(rows, min_width.max(1)) > usable {
            rows /= 2;
        }
        let left = usable.saturating_sub(rows as u64 * self.per_row);
        let tokens = (left / self.per_token.max(1)) as usize;
        BatchLimits {
            max_rows: rows,
            max_tokens: limits
                .max_tokens
                .min(tokens)
                .max(rows.min(limits.max_tokens)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_devices() {
        assert_eq!(parse_spec("cpu").unwrap(), DeviceSpec::Cpu);
        assert_eq!(parse_spec(" cuda ").unwrap(), DeviceSpec::Cuda(0));
        assert_eq!(parse_spec("cuda:3").unwrap(), DeviceSpec::Cuda(3));
        for bad in ["gpu", "cuda:", "cuda:x", "cuda3", "cuda:-1", ""] {
            let e = parse_spec(bad).unwrap_err().to_string();
            assert!(e.contains("use cpu, cuda or cuda:N"), "{bad}: {e}");
        }
        assert!(parse_device("cpu").unwrap().is_cpu());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_says_how_to_rebuild() {
        let e = parse_device("cuda:1").unwrap_err().to_string();
        assert!(e.contains("built without the `cuda` feature"), "{e}");
        assert!(e.contains("--features cuda"), "{e}");
        assert!(memory_info(&Device::Cpu).is_none());
    }

    fn marian() -> serde_json::Value {
        json!({"model_type": "marian", "vocab_size": 100, "d_model": 16,
               "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 2,
               "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32,
               "max_position_embeddings": 64, "pad_token_id": 99,
               "decoder_start_token_id": 99, "eos_token_id": 0})
    }

    #[test]
    fn auto_dtype() {
        let cfg = ModelConfig::from_json(&marian()).unwrap();
        assert_eq!(
            resolve_dtype(DTypeArg::Auto, &Device::Cpu, &cfg),
            DType::F32
        );
        assert_eq!(resolve_dtype(DTypeArg::F16, &Device::Cpu, &cfg), DType::F16);
        assert_eq!(
            resolve_dtype(DTypeArg::Bf16, &Device::Cpu, &cfg),
            DType::BF16
        );
        assert_eq!(dtype_name(DType::BF16), "bf16");
    }

    #[test]
    fn memory_fit_shrinks_only_when_needed() {
        let cfg = ModelConfig::from_json(&marian()).unwrap();
        let p = MemProfile::new(&cfg, DType::F16, 4, 64, 64);
        assert!(p.per_row > 0 && p.per_token > 0);
        let want = BatchLimits {
            max_tokens: 4096,
            max_rows: 64,
        };
        // plenty of memory: unchanged
        let got = p.fit(want, 1 << 40, 8);
        assert_eq!((got.max_tokens, got.max_rows), (4096, 64));
        // tight: a full batch of the fitted limits fits in 3/4 of the memory
        let free = p.batch_bytes(64, 64) / 4;
        let got = p.fit(want, free, 8);
        assert!(got.max_rows <= 64 && got.max_tokens < 4096, "{got:?}");
        assert!(
            got.max_rows as u64 * p.per_row + got.max_tokens as u64 * p.per_token <= free / 4 * 3,
            "{got:?}"
        );
        // hopeless: still one row
        let got = p.fit(want, 0, 8);
        assert_eq!(got.max_rows, 1);
        assert!(got.max_tokens >= 1);
    }
}
