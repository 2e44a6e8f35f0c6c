//! Encoder-decoder transformers (Marian, BART/mBART, T5) built from shared blocks.
//!
//! The contract between the model code and `generate`: a model encodes a padded batch once,
//! then a [`DecoderState`] is stepped one token per row, returning logits, and its rows can be
//! reordered / dropped (beam search, finished sequences leaving the batch).

use candle_core::Tensor;

pub mod random;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Config(String),
}

pub type Result<T> = std::result::Result<T, ModelError>;

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
}
