//! Batched greedy and beam search over a [`Seq2SeqModel`], with the exact semantics of
//! transformers 5.x `generate()` (same processors in the same order, same beam bookkeeping),
//! so that the same logits give the same token ids.
//!
//! The batch is encoded once; a source leaves the decoder batch as soon as its result can no
//! longer change (greedy: EOS or max length; beams: transformers' per-source "done" rules),
//! through [`DecoderState::select_rows`], which also expands sources into beams and reorders
//! beams. Scores are processed on the host, in buffers reused across steps.

mod beam;
pub mod config;
mod greedy;
pub mod processors;
mod select;

use candle_core::{DType, Device, Storage, Tensor};

pub use config::{EarlyStopping, GenerationConfig, Resolved, TokenIds};

use crate::model::{ModelError, Seq2SeqModel};

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("model: {0}")]
    Model(#[from] ModelError),
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("generation config: {0}")]
    Config(String),
    #[error("source {index}: {reason}")]
    Source { index: usize, reason: String },
    #[error("decoder returned logits of shape {got:?}, expected [{rows}, {vocab}]")]
    LogitsShape {
        got: Vec<usize>,
        rows: usize,
        vocab: usize,
    },
}

/// Generates one sequence per source. `sources` are unpadded token id lists (used as given:
/// no special tokens are added); the batch is padded with the config's pad id, masked,
/// encoded once and decoded with greedy search (`num_beams == 1`) or beam search.
///
/// Returns, per source and in order, the generated ids after the decoder start token, EOS
/// included when it was generated (no padding).
pub fn generate(
    model: &dyn Seq2SeqModel,
    sources: &[Vec<u32>],
    cfg: &GenerationConfig,
    device: &Device,
) -> Result<Vec<Vec<u32>>, GenerateError> {
    let resolved = cfg.resolve(model.vocab_size())?;
    generate_resolved(model, sources, &resolved, device)
}

/// [`generate`] with an already resolved config (resolve once, call per batch).
pub fn generate_resolved(
    model: &dyn Seq2SeqModel,
    sources: &[Vec<u32>],
    r: &Resolved,
    device: &Device,
) -> Result<Vec<Vec<u32>>, GenerateError> {
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    let (input_ids, mask) = pad_batch(sources, r.pad, device)?;
    let enc = model.encode(&input_ids, &mask)?;
    // The decoder is fed at most max_length - 1 tokens: the last generated one never is.
    let mut state = model.start_decoder(&enc, r.max_length - 1)?;
    let vocab = model.vocab_size();
    if r.num_beams == 1 {
        greedy::run(state.as_mut(), sources.len(), r, vocab)
    } else {
        beam::run(state.as_mut(), sources.len(), r, vocab)
    }
}

/// Right-pads `sources` with `pad` into `[batch, max_len]` u32 ids and a u8 mask.
pub fn pad_batch(
    sources: &[Vec<u32>],
    pad: u32,
    device: &Device,
) -> Result<(Tensor, Tensor), GenerateError> {
    if let Some(index) = sources.iter().position(|s| s.is_empty()) {
        return Err(GenerateError::Source {
            index,
            reason: "empty source (no token ids)".into(),
        });
    }
    let width = sources.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(sources.len() * width);
    let mut mask = Vec::with_capacity(sources.len() * width);
    for s in sources {
        ids.extend_from_slice(s);
        ids.extend(std::iter::repeat_n(pad, width - s.len()));
        mask.extend(std::iter::repeat_n(1u8, s.len()));
        mask.extend(std::iter::repeat_n(0u8, width - s.len()));
    }
    let shape = (sources.len(), width);
    Ok((
        Tensor::from_vec(ids, shape, device)?,
        Tensor::from_vec(mask, shape, device)?,
    ))
}

/// Runs `f` on a step's logits as one host slice `[rows * vocab]` of f32, copying them only
/// when they are not already contiguous f32 in host memory.
fn with_host_logits<R>(
    logits: &Tensor,
    rows: usize,
    vocab: usize,
    f: impl FnOnce(&[f32]) -> R,
) -> Result<R, GenerateError> {
    if logits.dims() != [rows, vocab] {
        return Err(GenerateError::LogitsShape {
            got: logits.dims().to_vec(),
            rows,
            vocab,
        });
    }
    let mut t = logits.clone();
    if !t.device().is_cpu() {
        t = t.to_device(&Device::Cpu)?;
    }
    if t.dtype() != DType::F32 {
        t = t.to_dtype(DType::F32)?;
    }
    {
        let (storage, layout) = t.storage_and_layout();
        if let (Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets()) {
            let data = cpu.as_slice::<f32>()?;
            return Ok(f(&data[start..end]));
        }
    }
    let flat = t.flatten_all()?.to_vec1::<f32>()?;
    Ok(f(&flat))
}

/// Index of the largest value, the first one on ties; NaN counts as the largest (torch).
fn argmax(row: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in row.iter().enumerate() {
        if i == 0 || ranks_above(v, best_v) {
            best = i;
            best_v = v;
            if v.is_nan() {
                break;
            }
        }
    }
    best as u32
}

/// Strict "a sorts before b" in a descending top-k where NaN is the largest value.
#[inline]
fn ranks_above(a: f32, b: f32) -> bool {
    if a.is_nan() {
        !b.is_nan()
    } else if b.is_nan() {
        false
    } else {
        a > b
    }
}

#[cfg(test)]
mod search_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_first_on_ties_and_nan_largest() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY; 3]), 0);
        assert_eq!(argmax(&[1.0, f32::NAN, 5.0, f32::NAN]), 1);
    }

    #[test]
    fn pad_batch_right_pads_and_masks() {
        let (ids, mask) = pad_batch(&[vec![5, 6, 7], vec![8]], 1, &Device::Cpu).unwrap();
        assert_eq!(
            ids.to_vec2::<u32>().unwrap(),
            vec![vec![5, 6, 7], vec![8, 1, 1]]
        );
        assert_eq!(
            mask.to_vec2::<u8>().unwrap(),
            vec![vec![1, 1, 1], vec![1, 0, 0]]
        );
        assert!(matches!(
            pad_batch(&[vec![5], vec![]], 1, &Device::Cpu),
            Err(GenerateError::Source { index: 1, .. })
        ));
    }
}
