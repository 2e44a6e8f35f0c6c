//! Building blocks shared by every family: embeddings, position tables, norms, attention,
//! feed-forward, T5 relative position buckets. Weight loading with names is in `load.rs`.

use candle_core::{DType, Device, Tensor, D};

use super::linear::Linear;

use super::config::Activation;
use super::Result;

pub use crate::kernels::attention::MASK_VALUE;

/// [`MASK_VALUE`] for a model dtype: its finite minimum (`torch.finfo(dtype).min`), since
/// f32::MIN rounds to -inf in f16/bf16. In half precision `score + min` may still round to
/// -inf; softmax then gives exactly 0 for that key, and every row keeps a real key.
pub fn mask_value(dtype: DType) -> f64 {
    match dtype {
        // f16: -(2 - 2^-10) * 2^15; bf16: -(2 - 2^-7) * 2^127 (both exact in f32)
        DType::F16 => -65504.0,
        DType::BF16 => -(2.0 - 2f64.powi(-7)) * 2f64.powi(127),
        DType::F64 => f64::MIN,
        _ => MASK_VALUE as f64,
    }
}

/// Token embedding, optionally scaled (Marian/BART `scale_embedding`: sqrt(d_model)).
#[derive(Debug, Clone)]
pub struct Embedding {
    pub table: EmbeddingTable,
    pub scale: Option<f64>,
}

/// Where the rows live: a `[vocab, d]` tensor, or the packed output projection when the
/// model ties them (one copy of the vocabulary matrix instead of two).
#[derive(Debug, Clone)]
pub enum EmbeddingTable {
    Tensor(Tensor),
    Packed(std::sync::Arc<crate::kernels::gemm::PackedMatrix>),
    /// The int8 output projection of a q8 model (rows dequantized on lookup).
    Q8(crate::kernels::int8::QLinear),
}

impl Embedding {
    pub fn new(weight: Tensor, scale: Option<f64>) -> Self {
        Self {
            table: EmbeddingTable::Tensor(weight),
            scale,
        }
    }

    /// `ids`: `[b, l]` u32 -> `[b, l, d]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        let x = match &self.table {
            EmbeddingTable::Tensor(w) => {
                let d = w.dim(1)?;
                w.index_select(&ids.flatten_all()?, 0)?.reshape((b, l, d))?
            }
            EmbeddingTable::Packed(p) => {
                gather_rows(ids, p.n(), p.k(), |i, row| p.row_into(i, row))?
            }
            EmbeddingTable::Q8(q) => {
                gather_rows(ids, q.out_features(), q.in_features(), |i, row| {
                    q.dequantized_row_into(i, row)
                })?
            }
        };
        Ok(match self.scale {
            Some(s) => x.affine(s, 0.0)?,
            None => x,
        })
    }

    pub fn rows(&self) -> usize {
        match &self.table {
            EmbeddingTable::Tensor(w) => w.dims().first().copied().unwrap_or(0),
            EmbeddingTable::Packed(p) => p.n(),
            EmbeddingTable::Q8(q) => q.out_features(),
        }
    }
}

/// `[b, l]` ids -> `[b, l, d]` rows of an `n`-row table that `fetch(i, out)` copies from.
fn gather_rows(
    ids: &Tensor,
    n: usize,
    d: usize,
    fetch: impl Fn(usize, &mut [f32]),
) -> Result<Tensor> {
    let (b, l) = ids.dims2()?;
    let mut data = vec![0f32; b * l * d];
    for (row, &id) in data
        .chunks_mut(d.max(1))
        .zip(&ids.flatten_all()?.to_vec1::<u32>()?)
    {
        if id as usize >= n {
            return Err(super::ModelError::Input(format!(
                "token id {id} is out of the vocabulary (size {n})"
            )));
        }
        fetch(id as usize, row);
    }
    Ok(Tensor::from_vec(data, (b, l, d), ids.device())?)
}

/// Absolute positions: a table (sinusoidal, computed; or learned, loaded) read from `offset`.
#[derive(Debug, Clone)]
pub struct Positions {
    table: Tensor,
    offset: usize,
    /// Number of usable positions.
    max: usize,
}

impl Positions {
    /// Learned table (BART/mBART store `max_position_embeddings + 2` rows and read from 2).
    pub fn learned(table: Tensor, offset: usize) -> Result<Self> {
        let rows = table.dim(0)?;
        let max = rows.checked_sub(offset).ok_or_else(|| {
            super::ModelError::Weights(format!(
                "position table has {rows} rows, fewer than its offset {offset}"
            ))
        })?;
        Ok(Self { table, offset, max })
    }

    /// Marian's static table: sin in the first half of the features, cos in the second,
    /// angle pos / 10000^(2*(j/2)/dim), computed in f64 then rounded like transformers.
    /// The table is computed in f32 and stored as `dtype` (transformers rounds it the same
    /// way when a model is cast to half precision).
    pub fn sinusoidal(n_pos: usize, dim: usize, dtype: DType, device: &Device) -> Result<Self> {
        let sentinel = dim / 2 + dim % 2;
        let mut data = vec![0f32; n_pos * dim];
        for (pos, row) in data.chunks_mut(dim).enumerate() {
            let angle = |jj: usize| pos as f64 / 10000f64.powf(2.0 * (jj / 2) as f64 / dim as f64);
            for (j, out) in row.iter_mut().enumerate() {
                // sin of even source features go to [0, sentinel), cos of odd ones after it
                *out = if j < sentinel {
                    angle(2 * j).sin() as f32
                } else {
                    angle(2 * (j - sentinel) + 1).cos() as f32
                };
            }
        }
        let table = Tensor::from_vec(data, (n_pos, dim), device)?.to_dtype(dtype)?;
        Ok(Self {
            table,
            offset: 0,
            max: n_pos,
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Rows for positions `start .. start + len`: `[len, d]`.
    pub fn range(&self, start: usize, len: usize) -> Result<Tensor> {
        if start + len > self.max {
            return Err(super::ModelError::Input(format!(
                "position {} is beyond max_position_embeddings {}",
                start + len - 1,
                self.max
            )));
        }
        Ok(self.table.narrow(0, self.offset + start, len)?)
    }
}

/// LayerNorm (with bias, mean-centred) or T5's RMSNorm (no bias, no centring).
#[derive(Debug, Clone)]
pub enum Norm {
    Layer {
        weight: Tensor,
        bias: Tensor,
        eps: f64,
    },
    Rms {
        weight: Tensor,
        eps: f64,
    },
}

impl Norm {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !x.device().is_cpu() {
            // GPU: candle's fused kernels (one launch, f32 accumulation for f16/bf16).
            let x = x.contiguous()?;
            return Ok(match self {
                Norm::Layer { weight, bias, eps } => {
                    candle_nn::ops::layer_norm(&x, weight, bias, *eps as f32)?
                }
                Norm::Rms { weight, eps } => candle_nn::ops::rms_norm(&x, weight, *eps as f32)?,
            });
        }
        if matches!(x.dtype(), DType::F16 | DType::BF16) {
            // CPU half precision: the f32 formula below, then back (sums of squares overflow
            // f16).
            let up = |t: &Tensor| t.to_dtype(DType::F32);
            let n = match self {
                Norm::Layer { weight, bias, eps } => Norm::Layer {
                    weight: up(weight)?,
                    bias: up(bias)?,
                    eps: *eps,
                },
                Norm::Rms { weight, eps } => Norm::Rms {
                    weight: up(weight)?,
                    eps: *eps,
                },
            };
            return Ok(n.forward(&up(x)?)?.to_dtype(x.dtype())?);
        }
        if x.dtype() == DType::F32 {
            // one fused pass per row instead of ~10 tensor ops (each a full pass + buffer)
            return self.forward_host(x);
        }
        let d = x.dim(D::Minus1)? as f64;
        Ok(match self {
            // Two passes (mean, then centred variance) as torch does: a one-pass E[x^2]-E[x]^2
            // loses digits when the residual stream has a large mean.
            Norm::Layer { weight, bias, eps } => {
                let mean = (x.sum_keepdim(D::Minus1)? / d)?;
                let xc = x.broadcast_sub(&mean)?;
                let var = (xc.sqr()?.sum_keepdim(D::Minus1)? / d)?;
                xc.broadcast_div(&(var + *eps)?.sqrt()?)?
                    .broadcast_mul(weight)?
                    .broadcast_add(bias)?
            }
            Norm::Rms { weight, eps } => {
                let var = (x.sqr()?.sum_keepdim(D::Minus1)? / d)?;
                x.broadcast_div(&(var + *eps)?.sqrt()?)?
                    .broadcast_mul(weight)?
            }
        })
    }
}

impl Norm {
    /// `self(a + b)`, the post-norm residual; one kernel on a GPU for LayerNorm.
    pub fn forward_add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        if let Norm::Layer { weight, bias, eps } = self {
            if let Some(y) = crate::kernels::cuda::add_layer_norm(a, b, weight, bias, *eps)? {
                return Ok(y);
            }
        }
        self.forward(&(a + b)?)
    }

    /// CPU f32: [`crate::kernels::simd::norm_rows`].
    fn forward_host(&self, x: &Tensor) -> Result<Tensor> {
        use super::with_slice;
        let d = x.dim(D::Minus1)?;
        let (weight, bias, eps) = match self {
            Norm::Layer { weight, bias, eps } => (weight, Some(bias), *eps),
            Norm::Rms { weight, eps } => (weight, None, *eps),
        };
        let y = with_slice(x, |xs| {
            with_slice(weight, |w| match bias {
                Some(b) => with_slice(b, |b| {
                    crate::kernels::simd::norm_rows(xs, d, w, Some(b), eps as f32)
                }),
                None => Ok(crate::kernels::simd::norm_rows(xs, d, w, None, eps as f32)),
            })
        })???;
        Ok(Tensor::from_vec(y, x.shape(), x.device())?)
    }
}

/// Multi-head attention projections. The query scaling (head_dim^-0.5 for BART-likes, none
/// for T5) is folded into the q weights at load time.
#[derive(Debug, Clone)]
pub struct Attention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub heads: usize,
    pub head_dim: usize,
    /// Self-attention on a GPU: q, k and v as one `[3 * inner, d]` projection (one GEMM and
    /// one bias kernel instead of three each); `q`/`k`/`v` are then views of its thirds.
    pub qkv: Option<Linear>,
}

impl Attention {
    /// `[b, l, d] -> [b, heads, l, head_dim]`, contiguous (free when l == 1).
    pub(crate) fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, l, _) = x.dims3()?;
        Ok(x.reshape((b, l, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// Fuse `q`, `k` and `v` into [`Attention::qkv`] (self-attention: all three read the same
    /// input). The separate projections become views of the fused weight, so the weights are
    /// stored once. No-op unless all three are plain tensors of one shape and bias presence.
    pub fn fuse_qkv(&mut self) -> Result<()> {
        let (
            Linear::Dense {
                weight: wq,
                bias: bq,
            },
            Linear::Dense {
                weight: wk,
                bias: bk,
            },
            Linear::Dense {
                weight: wv,
                bias: bv,
            },
        ) = (&self.q, &self.k, &self.v)
        else {
            return Ok(());
        };
        let inner = wq.dim(0)?;
        if wk.dims() != wq.dims() || wv.dims() != wq.dims() {
            return Ok(());
        }
        let w = Tensor::cat(&[wq, wk, wv], 0)?;
        let b = match (bq, bk, bv) {
            (Some(a), Some(b), Some(c)) => Some(Tensor::cat(&[a, b, c], 0)?),
            (None, None, None) => None,
            _ => return Ok(()),
        };
        let third = |i: usize| -> Result<Linear> {
            Ok(Linear::dense(
                w.narrow(0, i * inner, inner)?,
                match &b {
                    Some(b) => Some(b.narrow(0, i * inner, inner)?),
                    None => None,
                },
            ))
        };
        (self.q, self.k, self.v) = (third(0)?, third(1)?, third(2)?);
        self.qkv = Some(Linear::dense(w, b));
        Ok(())
    }

    /// Queries, keys and values of `x` (self-attention), each `[b, heads, l, head_dim]`.
    pub fn project_qkv(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let Some(qkv) = &self.qkv else {
            let (k, v) = self.key_value(x)?;
            return Ok((self.query(x)?, k, v));
        };
        let (b, l, _) = x.dims3()?;
        // [b, l, 3 * inner] -> [b, l, 3, heads, dh]: each third a strided view, made
        // contiguous once by the head split (the same one copy as the separate projections)
        let y = qkv
            .forward(x)?
            .reshape((b, l, 3, self.heads, self.head_dim))?;
        let part = |i: usize| -> Result<Tensor> {
            Ok(y.narrow(2, i, 1)?
                .squeeze(2)?
                .transpose(1, 2)?
                .contiguous()?)
        };
        Ok((part(0)?, part(1)?, part(2)?))
    }

    pub fn query(&self, x: &Tensor) -> Result<Tensor> {
        self.split_heads(&self.q.forward(x)?)
    }

    /// Keys and values of `x`: each `[b, heads, s, head_dim]`.
    pub fn key_value(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            self.split_heads(&self.k.forward(x)?)?,
            self.split_heads(&self.v.forward(x)?)?,
        ))
    }

    /// softmax(q k^T + bias) v, heads merged and projected: `[b, l, d_model]`.
    /// `bias` broadcasts to `[b, heads, l, s]` (padding / causal mask, T5 position bias).
    pub fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, _, l, _) = q.dims4()?;
        let s = k.dim(2)?;
        // Long sources on the CPU: a few sources at a time, so the [b, h, l, s] scores stay
        // ~16 MB instead of 134 MB for 8 x 512 tokens (fewer page faults, lower peak RSS).
        let per = self.heads * l * s;
        if q.device().is_cpu() && b > 1 && per * b > CHUNK_SCORES {
            let step = (CHUNK_SCORES / per).max(1);
            let mut parts = Vec::with_capacity(b.div_ceil(step));
            for start in (0..b).step_by(step) {
                let n = step.min(b - start);
                let bias = match bias {
                    Some(x) if x.dim(0)? == b => Some(x.narrow(0, start, n)?),
                    other => other.cloned(),
                };
                parts.push(self.attend_heads(
                    &q.narrow(0, start, n)?,
                    &k.narrow(0, start, n)?,
                    &v.narrow(0, start, n)?,
                    bias.as_ref(),
                )?);
            }
            return self.o.forward(&Tensor::cat(&parts, 0)?);
        }
        self.o.forward(&self.attend_heads(q, k, v, bias)?)
    }

    /// softmax(q k^T + bias) v with the heads merged: `[b, l, heads * head_dim]`.
    fn attend_heads(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, _, l, _) = q.dims4()?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(bias) = bias {
            scores = scores.broadcast_add(bias)?;
        }
        let probs = if scores.device().is_cpu() && scores.dtype() == DType::F32 {
            // vectorized exp (candle's CPU softmax calls libm's expf per element: ~400M of
            // them in a distilbart 8 x 512 encoder)
            let s = scores.dim(D::Minus1)?;
            let p = super::with_slice(&scores, |x| crate::kernels::simd::softmax_rows(x, s))?;
            Tensor::from_vec(p, scores.shape(), scores.device())?
        } else {
            candle_nn::ops::softmax_last_dim(&scores)?
        };
        Ok(probs
            .matmul(v)?
            .transpose(1, 2)?
            .reshape((b, l, self.heads * self.head_dim))?)
    }
}

/// Attention scores per chunk of sources on the CPU (elements: 4M f32 = 16 MB).
const CHUNK_SCORES: usize = 4 << 20;

/// Position-wise feed-forward; `gate` is T5 v1.1's linear branch (`wi_1`), multiplied with the
/// activated branch (`wi_0`).
#[derive(Debug, Clone)]
pub struct FeedForward {
    pub wi: Linear,
    pub gate: Option<Linear>,
    pub wo: Linear,
    pub act: Activation,
}

pub fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    // CPU f32: vectorized kernels (candle's call libm's expf / erff per element: 6% of a
    // distilbart run, 2% of an opus-mt beam step).
    let fast = match act {
        Activation::Silu => Some(crate::kernels::simd::Act::Silu),
        Activation::Gelu => Some(crate::kernels::simd::Act::GeluErf),
        _ => None,
    };
    if let Some(f) = fast {
        if x.device().is_cpu() && x.dtype() == DType::F32 {
            let y = super::with_slice(x, |v| crate::kernels::simd::activation(v, f))?;
            return Ok(Tensor::from_vec(y, x.shape(), x.device())?);
        }
    }
    Ok(match act {
        Activation::Relu => x.relu()?,
        Activation::Gelu => x.gelu_erf()?,
        Activation::GeluTanh => x.gelu()?,
        Activation::QuickGelu => (x * candle_nn::ops::sigmoid(&x.affine(1.702, 0.0)?)?)?,
        Activation::Silu => x.silu()?,
        Activation::Tanh => x.tanh()?,
    })
}

/// Feed-forward rows per chunk on the CPU: the [rows, d_ff] intermediates (and their
/// activation) of a long encoder batch stay ~16 MB each instead of 64 MB for 8 x 512 tokens
/// at d_ff 4096 (peak RSS; the products keep 1024-row operands, still full speed).
const FFN_CHUNK_ROWS: usize = 1024;

impl FeedForward {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let d = *dims.last().unwrap_or(&0);
        let rows = x.elem_count() / d.max(1);
        if x.device().is_cpu() && rows > FFN_CHUNK_ROWS {
            let flat = x.reshape((rows, d))?;
            let mut parts = Vec::with_capacity(rows.div_ceil(FFN_CHUNK_ROWS));
            for start in (0..rows).step_by(FFN_CHUNK_ROWS) {
                let n = FFN_CHUNK_ROWS.min(rows - start);
                parts.push(self.forward_rows(&flat.narrow(0, start, n)?)?);
            }
            let out = Tensor::cat(&parts, 0)?;
            let mut out_dims = dims;
            if let Some(last) = out_dims.last_mut() {
                *last = out.dim(1)?;
            }
            return Ok(out.reshape(out_dims)?);
        }
        self.forward_rows(x)
    }

    fn forward_rows(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.wi.forward_act(x, self.act)?;
        if let Some(gate) = &self.gate {
            h = (h * gate.forward(x)?)?;
        }
        self.wo.forward(&h)
    }
}

/// T5 relative position bias: a `[num_buckets, heads]` table indexed by the bucket of
/// (key position - query position); bidirectional in the encoder, causal in the decoder.
#[derive(Debug, Clone)]
pub struct RelativeBias {
    pub table: Tensor,
    pub bidirectional: bool,
    pub num_buckets: usize,
    pub max_distance: usize,
}

/// transformers' `T5Attention._relative_position_bucket`, including its float32 log.
pub fn relative_bucket(
    relative_position: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> u32 {
    let mut nb = num_buckets as i64;
    let mut bucket = 0i64;
    let rp = if bidirectional {
        nb /= 2;
        if relative_position > 0 {
            bucket += nb;
        }
        relative_position.abs()
    } else {
        (-relative_position).max(0)
    };
    let max_exact = nb / 2;
    if rp < max_exact {
        bucket += rp;
    } else {
        let ratio = (rp as f32 / max_exact as f32).ln();
        let denom = (max_distance as f64 / max_exact as f64).ln() as f32;
        let large = max_exact + (ratio / denom * (nb - max_exact) as f32) as i64;
        bucket += large.min(nb - 1);
    }
    bucket as u32
}

impl RelativeBias {
    fn gather(&self, buckets: Vec<u32>, q: usize, k: usize) -> Result<Tensor> {
        let device = self.table.device();
        let heads = self.table.dim(1)?;
        let idx = Tensor::from_vec(buckets, q * k, device)?;
        Ok(self
            .table
            .index_select(&idx, 0)?
            .reshape((q, k, heads))?
            .permute((2, 0, 1))?
            .unsqueeze(0)?
            .contiguous()?)
    }

    /// `[1, heads, q_len, k_len]` for queries at `q_offset ..` and keys at `0 ..`.
    pub fn matrix(&self, q_len: usize, k_len: usize, q_offset: usize) -> Result<Tensor> {
        let mut buckets = Vec::with_capacity(q_len * k_len);
        for i in 0..q_len {
            for j in 0..k_len {
                let rel = j as i64 - (i + q_offset) as i64;
                buckets.push(relative_bucket(
                    rel,
                    self.bidirectional,
                    self.num_buckets,
                    self.max_distance,
                ));
            }
        }
        self.gather(buckets, q_len, k_len)
    }

    /// For incremental decoding: `[1, heads, 1, max_len]` where column `c` holds the bias of
    /// distance `max_len - 1 - c`; the query at position p reads columns
    /// `max_len-1-p ..= max_len-1` (keys 0..=p) with a zero-copy narrow.
    pub fn by_distance_reversed(&self, max_len: usize) -> Result<Tensor> {
        let buckets = (0..max_len)
            .map(|c| {
                let dist = (max_len - 1 - c) as i64;
                relative_bucket(
                    -dist,
                    self.bidirectional,
                    self.num_buckets,
                    self.max_distance,
                )
            })
            .collect();
        self.gather(buckets, 1, max_len)
    }
}

/// `[b, s]` mask (nonzero = real token) -> additive `[b, 1, 1, s]` bias of `dtype`.
pub fn padding_bias(mask: &Tensor, dtype: DType) -> Result<Option<Tensor>> {
    let (b, s) = mask.dims2()?;
    // No padding: no bias. Adding zeros changes no score, and on a GPU the broadcast add over
    // [b, heads, l, s] was the encoder's largest cost (65% of kernel time, distilbart 64x512).
    if mask
        .flatten_all()?
        .min(0)?
        .to_dtype(DType::F32)?
        .to_scalar::<f32>()?
        > 0.0
    {
        return Ok(None);
    }
    let m = mask.to_dtype(DType::F32)?.clamp(0f32, 1f32)?;
    let min = mask_value(dtype);
    // 1 -> -MIN + MIN = 0 exactly, 0 -> MIN (computed in f32, where both are exact)
    Ok(Some(
        m.affine(-min, min)?
            .reshape((b, 1, 1, s))?
            .to_dtype(dtype)?,
    ))
}

/// `[1, 1, t, t]` additive causal mask of `dtype`.
pub fn causal_bias(t: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let min = mask_value(dtype) as f32;
    let data: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j > i { min } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(data, (1, 1, t, t), device)?.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_match_known_t5_values() {
        // t5-small: 32 buckets, max distance 128 (values from transformers).
        let b = |r| relative_bucket(r, true, 32, 128);
        assert_eq!((b(0), b(1), b(-1), b(7), b(-8)), (0, 17, 1, 23, 8));
        assert_eq!(b(-128), 15);
        assert_eq!(b(1000), 31);
        let c = |r| relative_bucket(r, false, 32, 128);
        assert_eq!((c(0), c(5), c(-5), c(-15), c(-16)), (0, 0, 5, 15, 16));
        assert_eq!(c(-10_000), 31);
    }

    /// Sources attended a few at a time (long sources on the CPU) give the same output as
    /// the whole batch at once, with a per-source padding bias.
    #[test]
    fn chunked_attention_equals_whole_batch() {
        let dev = Device::Cpu;
        let (b, heads, dh, l) = (3, 2, 4, 1100);
        let d = heads * dh;
        let w = |seed: f64| {
            Tensor::arange(0f32, (d * d) as f32, &dev)
                .unwrap()
                .affine(0.37, seed)
                .unwrap()
                .sin()
                .unwrap()
                .reshape((d, d))
                .unwrap()
        };
        let att = Attention {
            q: Linear::dense(w(0.1), None),
            k: Linear::dense(w(0.2), None),
            v: Linear::dense(w(0.3), None),
            o: Linear::dense(w(0.4), None),
            heads,
            head_dim: dh,
            qkv: None,
        };
        assert!(
            b * heads * l * l > CHUNK_SCORES,
            "must take the chunked path"
        );
        let x = Tensor::arange(0f32, (b * l * d) as f32, &dev)
            .unwrap()
            .affine(0.011, 0.0)
            .unwrap()
            .cos()
            .unwrap()
            .reshape((b, l, d))
            .unwrap();
        let mut mask = vec![1u8; b * l];
        mask[l - 5..l].fill(0); // source 0 padded
        let mask = Tensor::from_vec(mask, (b, l), &dev).unwrap();
        let bias = padding_bias(&mask, DType::F32).unwrap();
        let q = att.query(&x).unwrap();
        let (k, v) = att.key_value(&x).unwrap();
        let got = att.attend(&q, &k, &v, bias.as_ref()).unwrap();
        let want = att
            .o
            .forward(&att.attend_heads(&q, &k, &v, bias.as_ref()).unwrap())
            .unwrap();
        assert_eq!(crate::model::max_abs_diff(&got, &want), 0.0);
    }

    #[test]
    fn padding_bias_is_zero_or_min() {
        let m = Tensor::new(&[[1u8, 1, 0]], &Device::Cpu).unwrap();
        let full = Tensor::new(&[[1u8, 1, 1]], &Device::Cpu).unwrap();
        assert!(padding_bias(&full, DType::F32).unwrap().is_none());
        let b: Vec<f32> = padding_bias(&m, DType::F32)
            .unwrap()
            .expect("padded")
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(b, vec![0.0, 0.0, MASK_VALUE]);
    }

    #[test]
    fn half_masks_are_finite_minimums() {
        let m = Tensor::new(&[[1u8, 0]], &Device::Cpu).unwrap();
        for dt in [DType::F16, DType::BF16] {
            let b: Vec<f32> = padding_bias(&m, dt)
                .unwrap()
                .expect("padded")
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(b[0], 0.0, "{dt:?}");
            assert!(
                b[1].is_finite() && b[1] as f64 == mask_value(dt),
                "{dt:?} {b:?}"
            );
            let c: Vec<f32> = causal_bias(2, dt, &Device::Cpu)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(c[..3], [0.0, mask_value(dt) as f32, 0.0], "{dt:?}");
        }
    }

    #[test]
    fn sinusoidal_layout() {
        let p = Positions::sinusoidal(3, 4, DType::F32, &Device::Cpu).unwrap();
        let t: Vec<Vec<f32>> = p.range(0, 3).unwrap().to_vec2().unwrap();
        // dim 4: features [sin(p), sin(p/100), cos(p), cos(p/100)]
        let want = |p: f64| [p.sin(), (p / 100.0).sin(), p.cos(), (p / 100.0).cos()];
        for (pos, row) in t.iter().enumerate() {
            for (a, b) in row.iter().zip(want(pos as f64)) {
                assert!((*a as f64 - b).abs() < 1e-6, "{t:?}");
            }
        }
        assert!(p.range(2, 2).is_err());
    }
}
