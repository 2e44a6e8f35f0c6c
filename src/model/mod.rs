//! Encoder-decoder transformers (Marian, BART/mBART, T5) built from shared blocks.
//!
//! The contract between the model code and `generate`: a model encodes a padded batch once,
//! then a [`DecoderState`] is stepped one token per row, returning logits, and its rows can be
//! reordered / dropped (beam search, finished sequences leaving the batch).

use candle_core::{DType, Tensor};

pub mod config;
pub mod layers;
pub mod linear;
mod load;
pub mod transformer;

pub use config::{Activation, Arch, ModelConfig};
pub use transformer::Transformer;

/// Tests: the largest absolute difference of two tensors.
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// A kernel refused its input or weights (int8 packing, shapes).
    #[error(transparent)]
    Kernel(#[from] crate::kernels::KernelError),
    /// Bad or unsupported `config.json` content.
    #[error("{0}")]
    Config(String),
    /// Neither `model_type` nor `architectures` names a supported family.
    #[error("unknown architecture: {0}")]
    UnknownArchitecture(String),
    /// Checkpoint does not match the config (missing tensor, wrong shape); names the tensor.
    #[error("weights: {0}")]
    Weights(String),
    /// Bad model input (token id out of vocabulary, source too long, wrong shapes).
    #[error("{0}")]
    Input(String),
    /// Reading the model directory.
    #[error("{path}: {msg}")]
    Io { path: String, msg: String },
}

pub type Result<T> = std::result::Result<T, ModelError>;

/// `f` on the f32 data of a CPU tensor (copied first only when it is not contiguous).
pub(crate) fn with_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (candle_core::Storage::Cpu(cpu), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(f(&cpu.as_slice::<f32>()?[start..end]));
        }
        if !matches!(&*storage, candle_core::Storage::Cpu(_)) {
            return Err(ModelError::Input("expected a CPU tensor".to_string()));
        }
    }
    with_slice(&t.contiguous()?, f)
}

/// Encoder output for a padded batch.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// `[batch, src_len, d_model]`, f32 (or the model dtype).
    pub hidden: Tensor,
    /// `[batch, src_len]`, u8: 1 for a real token, 0 for padding.
    pub mask: Tensor,
}

/// A seq2seq model that `generate` can drive.
pub trait Seq2SeqModel: Send + Sync {
    /// `input_ids`: `[batch, src_len]` u32; `attention_mask`: `[batch, src_len]` u8 (1 = real).
    fn encode(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<EncoderOutput>;

    /// A fresh decoder for `enc`: cross-attention keys/values are computed here once, the
    /// self-attention cache is preallocated for `max_len` decoder positions.
    fn start_decoder(
        &self,
        enc: &EncoderOutput,
        max_len: usize,
    ) -> Result<Box<dyn DecoderState + '_>>;

    /// Output vocabulary size (width of the logits).
    fn vocab_size(&self) -> usize;

    /// Teacher forcing: logits `[batch, tgt_len, vocab]` for `decoder_input_ids`
    /// `[batch, tgt_len]` (first column = decoder start token). The default steps a decoder;
    /// models override it with one full pass.
    fn decode_teacher_forced(
        &self,
        enc: &EncoderOutput,
        decoder_input_ids: &Tensor,
    ) -> Result<Tensor> {
        let ids: Vec<Vec<u32>> = decoder_input_ids.to_dtype(DType::U32)?.to_vec2()?;
        let t = ids.first().map_or(0, Vec::len);
        let mut dec = self.start_decoder(enc, t.max(1))?;
        let mut out = Vec::with_capacity(t);
        for j in 0..t {
            let col: Vec<u32> = ids.iter().map(|r| r[j]).collect();
            out.push(dec.step(&col)?);
        }
        Ok(Tensor::stack(&out, 1)?)
    }
}

/// Incremental decoder over a set of rows (hypotheses).
pub trait DecoderState {
    /// Feed one token per row; returns logits `[rows, vocab]` (f32) for the next position.
    fn step(&mut self, tokens: &[u32]) -> Result<Tensor>;

    /// New row `i` continues old row `rows[i]`. Used to expand sources into beams, reorder
    /// beams, and drop finished rows. Repeats are allowed.
    fn select_rows(&mut self, rows: &[u32]) -> Result<()>;

    /// Number of rows currently decoded.
    fn rows(&self) -> usize;

    /// Hint: up to `rows` rows will be decoded (beam search, before expanding its sources
    /// into beams), so caches can be sized once instead of grown.
    fn reserve_rows(&mut self, _rows: usize) {}
}

/// Build a model from a parsed `config.json` and the checkpoint behind `vb` (root prefix,
/// f32). Dispatches on `model_type` / `architectures`.
pub fn from_config(
    config: &serde_json::Value,
    vb: candle_nn::VarBuilder,
) -> Result<Box<dyn Seq2SeqModel>> {
    let cfg = ModelConfig::from_json(config)?;
    Ok(Box::new(build(&cfg, &vb, LoadOptions::default())?))
}

/// How to build a model from its weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Quantize every CPU f32 projection to int8 as it is read (`--quantize q8`).
    pub q8: bool,
}

/// The model `cfg` describes from the checkpoint behind `vb`, as the concrete type (exposes
/// `config()` and `decode_full`). Loading a model directory is
/// [`crate::pipeline::engine::load_model`]'s job (tests use its `load_transformer`).
pub fn build(
    cfg: &ModelConfig,
    vb: &candle_nn::VarBuilder,
    opts: LoadOptions,
) -> Result<Transformer> {
    load::build(cfg, vb, opts)
}
