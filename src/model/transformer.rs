//! One encoder-decoder transformer for every family, assembled from the shared blocks; the
//! family only decides which blocks are present (see `load.rs`).

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::config::ModelConfig;
use super::layers::{
    causal_bias, padding_bias, Attention, Embedding, FeedForward, Norm, Positions, RelativeBias,
};
use super::linear::Linear;
use super::with_slice;
use super::{DecoderState, EncoderOutput, ModelError, Result, Seq2SeqModel};
use crate::kernels::attention::{self, CachePool, HostCache};
use crate::kernels::cuda::{self, BiasStrides, KvStrides, Query};

#[derive(Debug, Clone)]
pub struct EncoderLayer {
    pub self_attn: Attention,
    pub self_norm: Norm,
    pub ffn: FeedForward,
    pub ffn_norm: Norm,
}

#[derive(Debug, Clone)]
pub struct DecoderLayer {
    pub self_attn: Attention,
    pub self_norm: Norm,
    pub cross_attn: Attention,
    pub cross_norm: Norm,
    pub ffn: FeedForward,
    pub ffn_norm: Norm,
}

/// One side (encoder or decoder) of the model.
#[derive(Debug, Clone)]
pub struct Stack<L> {
    pub embed: Embedding,
    pub positions: Option<Positions>,
    /// BART/mBART `layernorm_embedding`.
    pub embed_norm: Option<Norm>,
    pub layers: Vec<L>,
    /// mBART `layer_norm`, T5 `final_layer_norm`.
    pub final_norm: Option<Norm>,
    /// T5: the first layer's relative bias, shared by all layers.
    pub rel_bias: Option<RelativeBias>,
}

impl<L> Stack<L> {
    /// Embeddings of `ids` at positions `start ..`: `[b, l, d]`.
    fn embed(&self, ids: &Tensor, start: usize) -> Result<Tensor> {
        let (_, l) = ids.dims2()?;
        let mut x = self.embed.forward(ids)?;
        if let Some(p) = &self.positions {
            x = x.broadcast_add(&p.range(start, l)?)?;
        }
        if let Some(n) = &self.embed_norm {
            x = n.forward(&x)?;
        }
        Ok(x)
    }
}

/// The model. Residual blocks are post-LN (Marian/BART: norm(x + f(x))) or pre-LN
/// (mBART/T5: x + f(norm(x))).
#[derive(Debug, Clone)]
pub struct Transformer {
    pub config: ModelConfig,
    pub encoder: Stack<EncoderLayer>,
    pub decoder: Stack<DecoderLayer>,
    pub pre_norm: bool,
    /// `[vocab, d_model]` with BART's `final_logits_bias` as its bias.
    pub lm_head: Linear,
    /// T5 v1.0 tied head: d_model^-0.5.
    pub output_scale: Option<f64>,
    pub device: Device,
    /// The last CPU search's self-attention cache buffers, for the next one.
    pub cache_pool: Arc<CachePool>,
}

fn block(
    x: &Tensor,
    norm: &Norm,
    pre: bool,
    f: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if pre {
        Ok((x + f(&norm.forward(x)?)?)?)
    } else {
        norm.forward_add(x, &f(x)?)
    }
}

/// Check `ids` (any integer dtype) against the vocabulary and return them as u32.
fn ids_u32(ids: &Tensor, vocab: usize, what: &str) -> Result<Tensor> {
    let ids = match ids.dtype() {
        DType::U32 => ids.clone(),
        DType::U8 => ids.to_dtype(DType::U32)?,
        DType::I64 => {
            if ids.elem_count() > 0 {
                let min = ids.flatten_all()?.min(0)?.to_scalar::<i64>()?;
                if min < 0 {
                    return Err(ModelError::Input(format!(
                        "{what}: negative token id {min}"
                    )));
                }
            }
            ids.to_dtype(DType::U32)?
        }
        dt => {
            return Err(ModelError::Input(format!(
                "{what}: token ids must be integers, got {dt:?}"
            )))
        }
    };
    if ids.elem_count() > 0 {
        let max = ids.flatten_all()?.max(0)?.to_scalar::<u32>()?;
        if max as usize >= vocab {
            return Err(ModelError::Input(format!(
                "{what}: token id {max} is out of the vocabulary (size {vocab})"
            )));
        }
    }
    Ok(ids)
}

impl Transformer {
    /// Fuse every self-attention's q/k/v projections (GPU; see [`Attention::fuse_qkv`]).
    pub fn fuse_self_attention(&mut self) -> Result<()> {
        for l in &mut self.encoder.layers {
            l.self_attn.fuse_qkv()?;
        }
        for l in &mut self.decoder.layers {
            l.self_attn.fuse_qkv()?;
        }
        Ok(())
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Dtype of the weights and activations (f32, or f16/bf16 on GPU); logits are f32.
    pub fn dtype(&self) -> DType {
        match &self.lm_head {
            Linear::Dense { weight, .. } => weight.dtype(),
            // only f32 CPU weights are packed or quantized; activations stay f32
            Linear::Packed(_) | Linear::Q8(_) => DType::F32,
        }
    }

    /// `x`: `[.., d_model]` decoder output -> logits `[.., vocab]`.
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let d = *dims.last().unwrap_or(&0);
        let rows = x.elem_count() / d.max(1);
        let mut h = x.reshape((rows, d))?;
        if let Some(s) = self.output_scale {
            h = h.affine(s, 0.0)?;
        }
        let logits = self.lm_head.forward(&h)?;
        let mut out_dims = dims;
        if let Some(last) = out_dims.last_mut() {
            *last = self.config.decoder_vocab_size;
        }
        // scores are processed in f32 (a no-op for f32 models)
        Ok(logits.reshape(out_dims)?.to_dtype(DType::F32)?)
    }

    /// Teacher-forced decoder pass over whole sequences (no cache): logits `[b, t, vocab]`.
    pub fn decode_full(&self, enc: &EncoderOutput, decoder_input_ids: &Tensor) -> Result<Tensor> {
        let ids = ids_u32(
            decoder_input_ids,
            self.config.decoder_vocab_size,
            "decoder_input_ids",
        )?;
        let (b, t) = ids.dims2()?;
        let (eb, _, _) = enc.hidden.dims3()?;
        if eb != b {
            return Err(ModelError::Input(format!(
                "decoder batch {b} does not match encoder batch {eb}"
            )));
        }
        let mut x = self.decoder.embed(&ids, 0)?;
        let mut self_bias = causal_bias(t, self.dtype(), &self.device)?;
        if let Some(rel) = &self.decoder.rel_bias {
            self_bias = rel.matrix(t, t, 0)?.broadcast_add(&self_bias)?;
        }
        let mut pass = FullPass {
            self_bias,
            cross_bias: padding_bias(&enc.mask, self.dtype())?,
            memory: &enc.hidden,
        };
        x = self.decoder_layers(x, &mut pass)?;
        self.logits(&x)
    }

    /// The decoder layers and final norm: the one layer sequence every decoding path runs,
    /// with attention from `attn` (whole sequences, or one step over host buffers or over
    /// candle/CUDA tensors).
    fn decoder_layers(&self, mut x: Tensor, attn: &mut impl DecoderAttention) -> Result<Tensor> {
        for (li, layer) in self.decoder.layers.iter().enumerate() {
            x = block(&x, &layer.self_norm, self.pre_norm, |h| {
                attn.self_attention(li, &layer.self_attn, h)
            })?;
            x = block(&x, &layer.cross_norm, self.pre_norm, |h| {
                attn.cross_attention(li, &layer.cross_attn, h)
            })?;
            x = block(&x, &layer.ffn_norm, self.pre_norm, |h| layer.ffn.forward(h))?;
        }
        if let Some(n) = &self.decoder.final_norm {
            x = n.forward(&x)?;
        }
        Ok(x)
    }
}

/// The two attentions of a decoder layer, for [`Transformer::decoder_layers`]: each takes
/// the block's (normed) input `h` `[rows, t, d]` and returns the output projection's result.
trait DecoderAttention {
    fn self_attention(&mut self, layer: usize, att: &Attention, h: &Tensor) -> Result<Tensor>;
    fn cross_attention(&mut self, layer: usize, att: &Attention, h: &Tensor) -> Result<Tensor>;
}

/// Teacher forcing: whole target sequences at once, no cache.
struct FullPass<'a> {
    /// Causal mask (+ T5 relative bias) `[.., t, t]`.
    self_bias: Tensor,
    /// Sources' padding bias.
    cross_bias: Option<Tensor>,
    /// Encoder output.
    memory: &'a Tensor,
}

impl DecoderAttention for FullPass<'_> {
    fn self_attention(&mut self, _: usize, att: &Attention, h: &Tensor) -> Result<Tensor> {
        let (q, k, v) = att.project_qkv(h)?;
        att.attend(&q, &k, &v, Some(&self.self_bias))
    }

    fn cross_attention(&mut self, _: usize, att: &Attention, h: &Tensor) -> Result<Tensor> {
        let q = att.query(h)?;
        let (k, v) = att.key_value(self.memory)?;
        att.attend(&q, &k, &v, self.cross_bias.as_ref())
    }
}

impl Seq2SeqModel for Transformer {
    fn encode(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<EncoderOutput> {
        let ids = ids_u32(input_ids, self.config.vocab_size, "input_ids")?;
        let (b, s) = ids.dims2()?;
        if attention_mask.dims() != [b, s] {
            return Err(ModelError::Input(format!(
                "attention_mask shape {:?} does not match input_ids shape [{b}, {s}]",
                attention_mask.dims()
            )));
        }
        if b == 0 || s == 0 {
            return Err(ModelError::Input(format!(
                "empty batch: input_ids shape [{b}, {s}]"
            )));
        }
        if let Some(p) = &self.encoder.positions {
            if s > p.max() {
                return Err(ModelError::Input(format!(
                    "source length {s} exceeds max_position_embeddings {}",
                    p.max()
                )));
            }
        }
        let mask = attention_mask.to_dtype(DType::U8)?;
        let mut bias = padding_bias(&mask, self.dtype())?;
        if let Some(rel) = &self.encoder.rel_bias {
            // as transformers: position bias + mask computed once, shared by all layers
            let r = rel.matrix(s, s, 0)?;
            bias = Some(match bias {
                Some(b) => r.broadcast_add(&b)?,
                None => r,
            });
        }
        let mut x = self.encoder.embed(&ids, 0)?;
        for layer in &self.encoder.layers {
            x = block(&x, &layer.self_norm, self.pre_norm, |h| {
                let (q, k, v) = layer.self_attn.project_qkv(h)?;
                layer.self_attn.attend(&q, &k, &v, bias.as_ref())
            })?;
            x = block(&x, &layer.ffn_norm, self.pre_norm, |h| layer.ffn.forward(h))?;
        }
        if let Some(n) = &self.encoder.final_norm {
            x = n.forward(&x)?;
        }
        Ok(EncoderOutput { hidden: x, mask })
    }

    fn start_decoder(
        &self,
        enc: &EncoderOutput,
        max_len: usize,
    ) -> Result<Box<dyn DecoderState + '_>> {
        Ok(Box::new(IncrementalDecoder::new(self, enc, max_len)?))
    }

    // the logits' width: the decoder (target) vocabulary
    #[allow(clippy::misnamed_getters)]
    fn vocab_size(&self) -> usize {
        self.config.decoder_vocab_size
    }

    fn decode_teacher_forced(
        &self,
        enc: &EncoderOutput,
        decoder_input_ids: &Tensor,
    ) -> Result<Tensor> {
        self.decode_full(enc, decoder_input_ids)
    }
}

/// Per-layer self-attention cache, position-major `[max_len, rows, heads, head_dim]` and
/// written in place: the filled part `[..pos]` is one contiguous block, so reordering rows
/// copies only what was filled, and attention reads it through a strided view.
struct KvCache {
    k: Tensor,
    v: Tensor,
}

/// `row_src` as runs of equal length: (the run's source, run length) when every run has the
/// same length and no source comes back later, else (row_src, 1).
fn groups(row_src: &[u32]) -> (Vec<u32>, usize) {
    let mut firsts = Vec::new();
    let mut len = 0usize;
    for (i, &s) in row_src.iter().enumerate() {
        if i == 0 || s != row_src[i - 1] {
            firsts.push(i);
        }
    }
    if let [_, second, ..] = firsts[..] {
        len = second;
    } else if firsts.len() == 1 {
        len = row_src.len();
    }
    let uniform = len > 1
        && row_src.len() == firsts.len() * len
        && firsts.iter().enumerate().all(|(j, &f)| f == j * len);
    let srcs: Vec<u32> = firsts.iter().map(|&f| row_src[f]).collect();
    let mut seen = srcs.clone();
    seen.sort_unstable();
    seen.dedup();
    if uniform && seen.len() == srcs.len() {
        (srcs, len)
    } else {
        (row_src.to_vec(), 1)
    }
}

/// Decoder state: preallocated self-attention caches, cross-attention K/V computed once.
pub struct IncrementalDecoder<'a> {
    model: &'a Transformer,
    rows: usize,
    pos: usize,
    max_len: usize,
    cache: Vec<KvCache>,
    /// Cross K/V of the encoder batch as given to `start_decoder` (`[sources, h, s, dh]`).
    cross_src: Vec<(Tensor, Tensor)>,
    /// Cross K/V for the current rows: `cross_src` rows `cross_rows`, one per group of
    /// `group` consecutive rows (beam search keeps a source's beams together, so the beams
    /// of a source share one copy of its K/V and act as extra query positions).
    cross: Vec<(Tensor, Tensor)>,
    /// Padding bias of the sources (`None`: no padding) and of the current rows.
    bias_src: Option<Tensor>,
    bias: Option<Tensor>,
    cross_rows: Vec<u32>,
    group: usize,
    /// Source (encoder row) of each current row.
    row_src: Vec<u32>,
    /// The previous cache's buffers, reused by the next reorder of the same row count.
    spare: Option<Vec<KvCache>>,
    /// T5: relative bias by reversed distance, `[1, h, 1, max_len]`.
    rel_steps: Option<Tensor>,
    /// CPU, f32: attention over host buffers instead of `cache` (see kernels/attention.rs).
    host: Option<HostDecode>,
}

/// What the host attention path keeps besides its cache.
struct HostDecode {
    cache: HostCache,
    /// Sources' padding mask `[sources, s]` (`None`: no padding).
    mask: Option<Vec<u8>>,
    /// T5: `rel_steps` as `[heads][max_len]`.
    rel: Option<Vec<f32>>,
}

impl<'a> IncrementalDecoder<'a> {
    fn new(model: &'a Transformer, enc: &EncoderOutput, max_len: usize) -> Result<Self> {
        let (b, s, _) = enc.hidden.dims3()?;
        if enc.mask.dims() != [b, s] {
            return Err(ModelError::Input(format!(
                "encoder mask shape {:?} does not match hidden states [{b}, {s}, _]",
                enc.mask.dims()
            )));
        }
        if max_len == 0 {
            return Err(ModelError::Input("decoder max_len is 0".into()));
        }
        if let Some(p) = &model.decoder.positions {
            if max_len > p.max() {
                return Err(ModelError::Input(format!(
                    "decoder max_len {max_len} exceeds max_position_embeddings {}",
                    p.max()
                )));
            }
        }
        let mut cross_src = Vec::with_capacity(model.decoder.layers.len());
        for layer in &model.decoder.layers {
            cross_src.push(layer.cross_attn.key_value(&enc.hidden)?);
        }
        let bias_src = padding_bias(&enc.mask, model.dtype())?;
        let rel_steps = match &model.decoder.rel_bias {
            Some(r) => Some(r.by_distance_reversed(max_len)?),
            None => None,
        };
        let host = if model.device.is_cpu() && model.dtype() == DType::F32 {
            let att = model.decoder.layers.first().map(|l| &l.self_attn);
            let inner = att.map_or(0, |a| a.heads * a.head_dim);
            let mask = match &bias_src {
                Some(_) => Some(enc.mask.flatten_all()?.to_vec1::<u8>()?),
                None => None,
            };
            let rel = match &rel_steps {
                Some(r) => Some(r.flatten_all()?.to_vec1::<f32>()?),
                None => None,
            };
            Some(HostDecode {
                cache: HostCache::new(
                    model.decoder.layers.len(),
                    max_len,
                    inner,
                    b,
                    model.cache_pool.clone(),
                ),
                mask,
                rel,
            })
        } else {
            None
        };
        let mut me = Self {
            host,
            model,
            rows: b,
            pos: 0,
            max_len,
            cache: Vec::new(),
            cross: cross_src.clone(),
            cross_src,
            bias: bias_src.clone(),
            bias_src,
            cross_rows: (0..b as u32).collect(),
            group: 1,
            row_src: (0..b as u32).collect(),
            spare: None,
            rel_steps,
        };
        if me.host.is_none() {
            me.cache = me.alloc_cache(b)?;
        }
        Ok(me)
    }

    fn alloc_cache(&self, rows: usize) -> Result<Vec<KvCache>> {
        self.model
            .decoder
            .layers
            .iter()
            .map(|l| {
                let shape = (self.max_len, rows, l.self_attn.heads, l.self_attn.head_dim);
                Ok(KvCache {
                    k: Tensor::zeros(shape, self.model.dtype(), &self.model.device)?,
                    v: Tensor::zeros(shape, self.model.dtype(), &self.model.device)?,
                })
            })
            .collect()
    }

    /// The same state on the candle-tensor path ([`DeviceStep`]) instead of host buffers:
    /// lets the CPU tests compare the two step backends.
    #[cfg(test)]
    fn without_host(mut self) -> Result<Self> {
        self.host = None;
        self.cache = self.alloc_cache(self.rows)?;
        Ok(self)
    }

    /// Current position (number of tokens fed so far).
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl DecoderState for IncrementalDecoder<'_> {
    fn step(&mut self, tokens: &[u32]) -> Result<Tensor> {
        let m = self.model;
        let vocab = m.config.decoder_vocab_size;
        if tokens.len() != self.rows {
            return Err(ModelError::Input(format!(
                "step got {} tokens for {} rows",
                tokens.len(),
                self.rows
            )));
        }
        if self.pos >= self.max_len {
            return Err(ModelError::Input(format!(
                "decoder is full: {} positions were preallocated",
                self.max_len
            )));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(ModelError::Input(format!(
                "decoder token id {bad} is out of the vocabulary (size {vocab})"
            )));
        }
        if self.rows == 0 {
            self.pos += 1;
            return Ok(Tensor::zeros((0, vocab), DType::F32, &m.device)?);
        }
        let pos = self.pos;
        let ids = Tensor::from_slice(tokens, (self.rows, 1), &m.device)?;
        let x = m.decoder.embed(&ids, pos)?;
        let x = match self.host.as_mut() {
            Some(host) => {
                let heads = m.decoder.layers.first().map_or(1, |l| l.self_attn.heads);
                // T5: the bias of keys 0..=pos for a query at pos, [heads][pos + 1]
                let bias = host.rel.as_ref().map(|rel| {
                    let ml = self.max_len;
                    (0..heads)
                        .flat_map(|h| rel[h * ml + ml - 1 - pos..(h + 1) * ml].iter().copied())
                        .collect()
                });
                let mut step = HostStep {
                    host,
                    bias,
                    cross: &self.cross_src,
                    row_src: &self.row_src,
                    rows: self.rows,
                    pos,
                    dev: &m.device,
                };
                m.decoder_layers(x, &mut step)?
            }
            None => {
                let self_bias = match &self.rel_steps {
                    Some(r) => Some(r.narrow(3, self.max_len - 1 - pos, pos + 1)?),
                    None => None,
                };
                m.decoder_layers(
                    x,
                    &mut DeviceStep {
                        dec: self,
                        self_bias,
                        pos,
                    },
                )?
            }
        };
        self.pos += 1;
        m.logits(&x.squeeze(1)?)
    }

    fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        if let Some(&bad) = rows.iter().find(|&&r| r as usize >= self.rows) {
            return Err(ModelError::Input(format!(
                "select_rows: row {bad} does not exist ({} rows)",
                self.rows
            )));
        }
        let identity =
            rows.len() == self.rows && rows.iter().enumerate().all(|(i, &r)| r as usize == i);
        if identity {
            return Ok(());
        }
        let n = rows.len();
        let device = &self.model.device;
        if let Some(host) = &mut self.host {
            // rows read their source's cross K/V through `row_src`: nothing to gather
            self.row_src = rows.iter().map(|&r| self.row_src[r as usize]).collect();
            host.cache.select_rows(rows, self.pos);
            self.rows = n;
            return Ok(());
        }
        // Cross K/V and mask only change when the rows' sources change (not on a beam reorder
        // within a source); they are re-gathered from the per-source originals.
        let row_src: Vec<u32> = rows.iter().map(|&r| self.row_src[r as usize]).collect();
        if row_src != self.row_src {
            let (cross_rows, group) = groups(&row_src);
            if cross_rows != self.cross_rows || group != self.group {
                let n_src = self.cross_src.first().map_or(Ok(0), |(k, _)| k.dim(0))?;
                let all = cross_rows.len() == n_src
                    && cross_rows.iter().enumerate().all(|(i, &r)| r as usize == i);
                if all {
                    self.cross = self.cross_src.clone();
                    self.bias = self.bias_src.clone();
                } else if !cross_rows.is_empty() {
                    let idx = Tensor::from_slice(&cross_rows, cross_rows.len(), device)?;
                    self.cross = self
                        .cross_src
                        .iter()
                        .map(|(k, v)| Ok((k.index_select(&idx, 0)?, v.index_select(&idx, 0)?)))
                        .collect::<Result<_>>()?;
                    self.bias = match &self.bias_src {
                        Some(b) => Some(b.index_select(&idx, 0)?),
                        None => None,
                    };
                }
                self.cross_rows = cross_rows;
                self.group = group;
            }
            self.row_src = row_src;
        }
        // positions >= pos are written before they are read: a reused buffer needs no zeroing
        let mut cache = match self.spare.take() {
            Some(c) if c.first().is_none_or(|l| l.k.dim(1).ok() == Some(n)) => c,
            _ => self.alloc_cache(n)?,
        };
        if n > 0 && self.pos > 0 {
            // copy only the filled positions into the fresh buffers
            let idx = Tensor::from_slice(rows, n, device)?;
            for (new, old) in cache.iter_mut().zip(&self.cache) {
                new.k
                    .slice_set(&old.k.narrow(0, 0, self.pos)?.index_select(&idx, 1)?, 0, 0)?;
                new.v
                    .slice_set(&old.v.narrow(0, 0, self.pos)?.index_select(&idx, 1)?, 0, 0)?;
            }
        }
        self.spare = Some(std::mem::replace(&mut self.cache, cache));
        self.rows = n;
        Ok(())
    }

    fn rows(&self) -> usize {
        self.rows
    }

    fn reserve_rows(&mut self, rows: usize) {
        if let Some(host) = &mut self.host {
            host.cache.reserve(rows);
        }
    }
}

impl IncrementalDecoder<'_> {
    /// Cross-attention of a step's rows through [`cuda::attend_one`] (`None`: not on a GPU,
    /// or a layout it does not take): `ck`/`cv` `[cross rows, h, s, dh]`, `group` rows each.
    fn cross_attend_one(
        &self,
        att: &Attention,
        h: &Tensor,
        ck: &Tensor,
        cv: &Tensor,
    ) -> Result<Option<Tensor>> {
        if self.model.device.is_cpu() || !cuda::enabled() {
            return Ok(None);
        }
        let (_, _, s, dh) = ck.dims4()?;
        let inner = att.heads * att.head_dim;
        if dh != att.head_dim || self.bias.as_ref().is_some_and(|b| !b.is_contiguous()) {
            return Ok(None);
        }
        let q = att.q.forward(h)?;
        let kv = KvStrides {
            src: att.heads * s * dh,
            head: s * dh,
            key: dh,
        };
        // padding bias [cross rows, 1, 1, s]: one row per source, the same for every head
        let bias = self.bias.as_ref().map(|b| BiasStrides {
            bias: b,
            src: s,
            head: 0,
        });
        let query = Query {
            q: &q,
            row: inner,
            heads: att.heads,
            dh,
        };
        match cuda::attend_one(query, ck, cv, s, self.group, kv, bias)? {
            Some(o) => Ok(Some(att.o.forward(&o.reshape((self.rows, 1, inner))?)?)),
            None => Ok(None),
        }
    }
}

/// One decoding step on the CPU in f32: projections and feed-forward through `Linear`,
/// attention over host buffers (kernels/attention.rs).
struct HostStep<'a> {
    host: &'a mut HostDecode,
    /// T5: this step's self-attention bias, `[heads][pos + 1]`.
    bias: Option<Vec<f32>>,
    /// Cross K/V per layer, one row per source (rows read theirs through `row_src`).
    cross: &'a [(Tensor, Tensor)],
    row_src: &'a [u32],
    rows: usize,
    pos: usize,
    dev: &'a Device,
}

impl DecoderAttention for HostStep<'_> {
    fn self_attention(&mut self, li: usize, att: &Attention, h: &Tensor) -> Result<Tensor> {
        let (rows, pos) = (self.rows, self.pos);
        let inner = att.heads * att.head_dim;
        let (q, k, v) = (att.q.forward(h)?, att.k.forward(h)?, att.v.forward(h)?);
        let cache = &mut self.host.cache;
        with_slice(&k, |k| with_slice(&v, |v| cache.write(li, pos, k, v)))??;
        let mut out = vec![0f32; rows * inner];
        with_slice(&q, |q| {
            cache.attend(li, pos, att.heads, q, self.bias.as_deref(), &mut out)
        })?;
        att.o
            .forward(&Tensor::from_vec(out, (rows, 1, inner), self.dev)?)
    }

    fn cross_attention(&mut self, li: usize, att: &Attention, h: &Tensor) -> Result<Tensor> {
        let (ck, cv) = &self.cross[li];
        let inner = att.heads * att.head_dim;
        let s = ck.dim(2)?;
        let q = att.q.forward(h)?;
        let mut out = vec![0f32; self.rows * inner];
        with_slice(&q, |q| {
            with_slice(ck, |k| {
                with_slice(cv, |v| {
                    attention::cross_attend(
                        q,
                        k,
                        v,
                        self.host.mask.as_deref(),
                        self.row_src,
                        att.heads,
                        s,
                        &mut out,
                    )
                })
            })
        })???;
        att.o
            .forward(&Tensor::from_vec(out, (self.rows, 1, inner), self.dev)?)
    }
}

/// One decoding step through candle tensors (GPU, or half precision on the CPU), with
/// tomtat's CUDA kernels where they apply.
struct DeviceStep<'d, 'a> {
    dec: &'d IncrementalDecoder<'a>,
    /// T5: `[1, h, 1, pos + 1]` view of the by-distance relative bias.
    self_bias: Option<Tensor>,
    pos: usize,
}

impl DecoderAttention for DeviceStep<'_, '_> {
    fn self_attention(&mut self, li: usize, att: &Attention, h: &Tensor) -> Result<Tensor> {
        let (dec, pos) = (self.dec, self.pos);
        let cache = &dec.cache[li];
        let inner = att.heads * att.head_dim;
        let rows = dec.rows;
        // GPU, fused projection: one GEMM; its keys and values are copied into the
        // cache at `pos` straight from its output, the query is read from it in place
        let mut fused = None;
        if let Some(qkv) = &att.qkv {
            let y = qkv.forward(h)?;
            let at = pos * rows * inner;
            if cuda::write_rows(&cache.k, at, &y, inner, 3 * inner, inner)?
                && cuda::write_rows(&cache.v, at, &y, 2 * inner, 3 * inner, inner)?
            {
                fused = Some(y);
            }
        }
        let (q, q_row) = match fused {
            Some(y) => (y, 3 * inner),
            None => {
                let kv_shape = (1, rows, att.heads, att.head_dim);
                cache
                    .k
                    .slice_set(&att.k.forward(h)?.reshape(kv_shape)?, 0, pos)?;
                cache
                    .v
                    .slice_set(&att.v.forward(h)?.reshape(kv_shape)?, 0, pos)?;
                (att.q.forward(h)?, inner)
            }
        };
        // GPU: one kernel reads the cache in place (no per-step copies of it)
        let kv = KvStrides {
            src: inner,
            head: att.head_dim,
            key: rows * inner,
        };
        // [1, h, 1, pos + 1] view of the by-distance table: per head, shared by rows
        let bias = self.self_bias.as_ref().map(|b| BiasStrides {
            bias: b,
            src: 0,
            head: b.stride()[1],
        });
        let query = Query {
            q: &q,
            row: q_row,
            heads: att.heads,
            dh: att.head_dim,
        };
        if let Some(o) = cuda::attend_one(query, &cache.k, &cache.v, pos + 1, 1, kv, bias)? {
            return att.o.forward(&o.reshape((rows, 1, inner))?);
        }
        let q = if q_row == inner {
            q
        } else {
            q.narrow(2, 0, inner)?.contiguous()?
        };
        let q = att.split_heads(&q)?;
        // [pos+1, rows, h, dh] -> [rows, h, pos+1, dh] without copying (CPU gemm takes
        // any strides; other backends get a contiguous copy)
        let on_cpu = dec.model.device.is_cpu();
        let view = |t: &Tensor| -> Result<Tensor> {
            let t = t.narrow(0, 0, pos + 1)?.permute((1, 2, 0, 3))?;
            Ok(if on_cpu { t } else { t.contiguous()? })
        };
        att.attend(
            &q,
            &view(&cache.k)?,
            &view(&cache.v)?,
            self.self_bias.as_ref(),
        )
    }

    fn cross_attention(&mut self, li: usize, att: &Attention, h: &Tensor) -> Result<Tensor> {
        let dec = self.dec;
        let (ck, cv) = &dec.cross[li];
        if let Some(o) = dec.cross_attend_one(att, h, ck, cv)? {
            return Ok(o);
        }
        if dec.group == 1 {
            let q = att.query(h)?;
            return att.attend(&q, ck, cv, dec.bias.as_ref());
        }
        // [rows, 1, d] -> [groups, group, d]: a group's rows are query positions
        let (rows, _, d) = h.dims3()?;
        let hg = h.reshape((rows / dec.group, dec.group, d))?;
        let q = att.query(&hg)?;
        Ok(att
            .attend(&q, ck, cv, dec.bias.as_ref())?
            .reshape((rows, 1, d))?)
    }
}

impl Transformer {
    /// Quantize every projection (attention q/k/v/o, feed-forward, vocabulary head) to int8
    /// in place. Embeddings, norms and attention score/context products stay f32 (a tied
    /// embedding keeps reading the f32 rows). CPU only.
    pub fn quantize_q8(&mut self) -> Result<()> {
        if !self.device.is_cpu() {
            return Err(ModelError::Input(
                "--quantize q8 runs on the CPU only".into(),
            ));
        }
        let mut all: Vec<&mut super::linear::Linear> = Vec::new();
        for l in &mut self.encoder.layers {
            let a = &mut l.self_attn;
            all.extend([&mut a.q, &mut a.k, &mut a.v, &mut a.o]);
            all.extend([&mut l.ffn.wi, &mut l.ffn.wo]);
            all.extend(l.ffn.gate.as_mut());
        }
        for l in &mut self.decoder.layers {
            for a in [&mut l.self_attn, &mut l.cross_attn] {
                all.extend([&mut a.q, &mut a.k, &mut a.v, &mut a.o]);
            }
            all.extend([&mut l.ffn.wi, &mut l.ffn.wo]);
            all.extend(l.ffn.gate.as_mut());
        }
        all.push(&mut self.lm_head);
        for lin in all {
            lin.quantize_q8()?;
        }
        Ok(())
    }

    /// Whether [`Self::quantize_q8`] has run.
    pub fn is_q8(&self) -> bool {
        self.lm_head.is_q8()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both step backends run the one layer sequence on the same weights: the host-buffer
    /// path and the candle-tensor path (the GPU's, here on the CPU) give the same logits,
    /// through padding, beam reorders and rows leaving the batch, for every family.
    #[test]
    fn host_and_tensor_step_backends_agree() {
        let dev = Device::Cpu;
        for fam in ["marian", "bart", "mbart", "t5", "t5v11"] {
            let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/models")
                .join(fam);
            let m = crate::pipeline::engine::load_transformer(
                &dir,
                crate::device::DTypeArg::Auto,
                &dev,
            )
            .unwrap();
            let ids = Tensor::new(&[[5u32, 9, 13, 2, 1], [7, 11, 2, 0, 0]], &dev).unwrap();
            let mask = Tensor::new(&[[1u8, 1, 1, 1, 1], [1, 1, 1, 0, 0]], &dev).unwrap();
            let enc = m.encode(&ids, &mask).unwrap();
            let mut host = IncrementalDecoder::new(&m, &enc, 8).unwrap();
            assert!(
                host.host.is_some(),
                "{fam}: f32 on the CPU steps on host buffers"
            );
            let mut tensors = IncrementalDecoder::new(&m, &enc, 8)
                .unwrap()
                .without_host()
                .unwrap();
            let mut tokens = vec![0u32, 0];
            for step in 0..6 {
                let a = host.step(&tokens).unwrap();
                let b = tensors.step(&tokens).unwrap();
                let d = crate::model::max_abs_diff(&a, &b);
                assert!(d < 1e-4, "{fam} step {step}: max |diff| {d}");
                // beams of source 0 and 1, then a reorder, then source 1 alone
                let rows: Vec<u32> = match step {
                    0 => vec![0, 0, 1, 1],
                    2 => vec![1, 0, 3, 3],
                    4 => vec![2, 3],
                    _ => (0..host.rows() as u32).collect(),
                };
                host.select_rows(&rows).unwrap();
                tensors.select_rows(&rows).unwrap();
                tokens = (0..rows.len() as u32).map(|i| 3 + i + step).collect();
            }
        }
    }

    #[test]
    fn beam_rows_group_by_source() {
        assert_eq!(groups(&[0, 0, 1, 1, 3, 3]), (vec![0, 1, 3], 2));
        assert_eq!(groups(&[2, 2, 2]), (vec![2], 3));
        // single rows, uneven runs, or a source coming back: per-row
        assert_eq!(groups(&[0, 1, 2]), (vec![0, 1, 2], 1));
        assert_eq!(groups(&[0, 0, 1]), (vec![0, 0, 1], 1));
        assert_eq!(groups(&[0, 0, 1, 1, 0, 0]), (vec![0, 0, 1, 1, 0, 0], 1));
        assert_eq!(groups(&[]), (vec![], 1));
    }
}
