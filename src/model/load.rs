//! Architecture-specific weight names -> the shared blocks (`layers.rs`) -> a [`Transformer`].

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::config::{Arch, ModelConfig};
use super::layers::{
    Attention, Embedding, EmbeddingTable, FeedForward, Norm, Positions, RelativeBias,
};
use super::linear::Linear;
use super::transformer::{DecoderLayer, EncoderLayer, Stack, Transformer};
use super::{LoadOptions, ModelError, Result};

/// A tensor of the checkpoint with its expected shape; errors name the tensor.
fn tensor(vb: &VarBuilder, shape: &[usize], name: &str) -> Result<Tensor> {
    let full = if vb.prefix().is_empty() {
        name.to_string()
    } else {
        format!("{}.{name}", vb.prefix())
    };
    if !vb.contains_tensor(name) {
        return Err(ModelError::Weights(format!(
            "missing tensor {full} (expected shape {shape:?})"
        )));
    }
    let t = vb
        .get_unchecked(name)
        .map_err(|e| ModelError::Weights(format!("tensor {full}: {e}")))?;
    if t.dims() != shape {
        return Err(ModelError::Weights(format!(
            "tensor {full} has shape {:?}, the config implies {shape:?}",
            t.dims()
        )));
    }
    // the dtype the VarBuilder was opened with (f32, or f16/bf16 for GPU inference)
    Ok(t.to_dtype(vb.dtype())?)
}

/// The first of `names` present in the checkpoint.
fn first_of(vb: &VarBuilder, shape: &[usize], names: &[&str]) -> Result<Tensor> {
    match names.iter().find(|n| vb.contains_tensor(n)) {
        Some(n) => tensor(vb, shape, n),
        None => Err(ModelError::Weights(format!(
            "missing tensor: none of {names:?} (expected shape {shape:?})"
        ))),
    }
}

/// Weight and optional bias of an `nn.Linear`, multiplied by `scale` when given.
fn linear_scaled(
    vb: &VarBuilder,
    lo: LoadOptions,
    out_dim: usize,
    in_dim: usize,
    bias: bool,
    scale: Option<f64>,
) -> Result<Linear> {
    let mut w = tensor(vb, &[out_dim, in_dim], "weight")?;
    let mut b = if bias {
        Some(tensor(vb, &[out_dim], "bias")?)
    } else {
        None
    };
    if let Some(s) = scale {
        w = w.affine(s, 0.0)?;
        b = b.map(|b| b.affine(s, 0.0)).transpose()?;
    }
    Linear::prepared(w, b, lo.q8)
}

fn linear(
    vb: &VarBuilder,
    lo: LoadOptions,
    out_dim: usize,
    in_dim: usize,
    bias: bool,
) -> Result<Linear> {
    linear_scaled(vb, lo, out_dim, in_dim, bias, None)
}

fn layer_norm(vb: &VarBuilder, d: usize, eps: f64) -> Result<Norm> {
    Ok(Norm::Layer {
        weight: tensor(vb, &[d], "weight")?,
        bias: tensor(vb, &[d], "bias")?,
        eps,
    })
}

fn rms_norm(vb: &VarBuilder, d: usize, eps: f64) -> Result<Norm> {
    Ok(Norm::Rms {
        weight: tensor(vb, &[d], "weight")?,
        eps,
    })
}

/// q/k/v/o projections; `scale` is folded into q (weight and bias).
#[allow(clippy::too_many_arguments)]
fn attention(
    vb: &VarBuilder,
    lo: LoadOptions,
    names: [&str; 4],
    d_model: usize,
    heads: usize,
    head_dim: usize,
    bias: bool,
    scale: Option<f64>,
) -> Result<Attention> {
    let inner = heads * head_dim;
    Ok(Attention {
        q: linear_scaled(&vb.pp(names[0]), lo, inner, d_model, bias, scale)?,
        k: linear(&vb.pp(names[1]), lo, inner, d_model, bias)?,
        v: linear(&vb.pp(names[2]), lo, inner, d_model, bias)?,
        o: linear(&vb.pp(names[3]), lo, d_model, inner, bias)?,
        heads,
        head_dim,
        qkv: None,
    })
}

/// `lm_head.weight` if present, else the decoder embedding when tied.
fn output_projection(vb: &VarBuilder, cfg: &ModelConfig, dec_embed: &Tensor) -> Result<Tensor> {
    let shape = [cfg.decoder_vocab_size, cfg.d_model];
    if vb.contains_tensor("lm_head.weight") {
        tensor(vb, &shape, "lm_head.weight")
    } else if cfg.tie_word_embeddings {
        Ok(dec_embed.clone())
    } else {
        Err(ModelError::Weights(
            "missing tensor lm_head.weight (config says tie_word_embeddings=false)".into(),
        ))
    }
}

/// Encoder and decoder embeddings. When the output projection is the decoder embedding
/// (tied) and was packed, the embeddings read their rows from the packed copy, so the
/// vocabulary matrix is held once (it is the largest tensor of a Marian model).
fn tied_embeddings(
    lm_head: &Linear,
    tied: bool,
    enc_w: Tensor,
    dec_w: Tensor,
    scale: Option<f64>,
) -> (Embedding, Embedding) {
    let table = match lm_head {
        Linear::Packed(p) => Some(EmbeddingTable::Packed(p.clone())),
        Linear::Q8(q) => Some(EmbeddingTable::Q8(q.clone())),
        Linear::Dense { .. } => None,
    };
    match (tied, table) {
        (true, Some(table)) => {
            let packed = Embedding { table, scale };
            let enc = if enc_w.id() == dec_w.id() {
                packed.clone()
            } else {
                Embedding::new(enc_w, scale)
            };
            (enc, packed)
        }
        _ => (Embedding::new(enc_w, scale), Embedding::new(dec_w, scale)),
    }
}

/// One family's names for the blocks of a layer, and how its norms and feed-forwards load.
struct LayerLayout<'a> {
    d_model: usize,
    eps: f64,
    lo: LoadOptions,
    /// Attention projections (q, k, v, out) inside an attention block.
    proj: [&'a str; 4],
    /// Whether the attention projections have biases.
    bias: bool,
    /// LayerNorm (BART family) or RMSNorm (T5).
    norm: fn(&VarBuilder, usize, f64) -> Result<Norm>,
    /// The family's feed-forward block under a VarBuilder, with its inner size.
    ffn: &'a dyn Fn(&VarBuilder, usize) -> Result<FeedForward>,
    self_attn: &'a str,
    self_norm: &'a str,
    cross_attn: &'a str,
    cross_norm: &'a str,
}

/// Where one side's (encoder or decoder) layers are and their sizes.
struct SideLayout<'a> {
    /// Layer `i` is at `{layers}.{i}`, then `.{sub}` when given.
    layers: &'a str,
    sub: Option<&'a str>,
    count: usize,
    heads: usize,
    head_dim: usize,
    ffn_dim: usize,
    /// Attention scale folded into q.
    scale: Option<f64>,
    /// The feed-forward block's prefix inside a layer (`None`: the layer itself), and its
    /// norm's.
    ffn: Option<&'a str>,
    ffn_norm: &'a str,
}

impl LayerLayout<'_> {
    /// The VarBuilder of layer `i` of `side`.
    fn layer_vb<'v>(vb: &VarBuilder<'v>, side: &SideLayout, i: usize) -> VarBuilder<'v> {
        let lv = vb.pp(side.layers).pp(i);
        match side.sub {
            Some(sub) => lv.pp(sub),
            None => lv,
        }
    }

    /// The attention block `name` of a layer, with the side's heads and scale.
    fn attention(&self, lv: &VarBuilder, name: &str, side: &SideLayout) -> Result<Attention> {
        attention(
            &lv.pp(name),
            self.lo,
            self.proj,
            self.d_model,
            side.heads,
            side.head_dim,
            self.bias,
            side.scale,
        )
    }

    /// The norm `name` of a layer.
    fn norm(&self, lv: &VarBuilder, name: &str) -> Result<Norm> {
        (self.norm)(&lv.pp(name), self.d_model, self.eps)
    }

    /// The feed-forward block of a layer.
    fn ffn(&self, lv: &VarBuilder, side: &SideLayout) -> Result<FeedForward> {
        match side.ffn {
            Some(prefix) => (self.ffn)(&lv.pp(prefix), side.ffn_dim),
            None => (self.ffn)(lv, side.ffn_dim),
        }
    }

    /// All encoder layers (self-attention and feed-forward blocks).
    fn encoder_layers(&self, vb: &VarBuilder, side: &SideLayout) -> Result<Vec<EncoderLayer>> {
        let mut layers = Vec::with_capacity(side.count);
        for i in 0..side.count {
            let lv = Self::layer_vb(vb, side, i);
            layers.push(EncoderLayer {
                self_attn: self.attention(&lv, self.self_attn, side)?,
                self_norm: self.norm(&lv, self.self_norm)?,
                ffn: self.ffn(&lv, side)?,
                ffn_norm: self.norm(&lv, side.ffn_norm)?,
            });
        }
        Ok(layers)
    }

    /// All decoder layers (self-attention, cross-attention and feed-forward blocks).
    fn decoder_layers(&self, vb: &VarBuilder, side: &SideLayout) -> Result<Vec<DecoderLayer>> {
        let mut layers = Vec::with_capacity(side.count);
        for i in 0..side.count {
            let lv = Self::layer_vb(vb, side, i);
            layers.push(DecoderLayer {
                self_attn: self.attention(&lv, self.self_attn, side)?,
                self_norm: self.norm(&lv, self.self_norm)?,
                cross_attn: self.attention(&lv, self.cross_attn, side)?,
                cross_norm: self.norm(&lv, self.cross_norm)?,
                ffn: self.ffn(&lv, side)?,
                ffn_norm: self.norm(&lv, side.ffn_norm)?,
            });
        }
        Ok(layers)
    }
}

/// The output projection, then the embeddings (which may read their rows from it, see
/// [`tied_embeddings`]). Packing the projection first frees the (tied) embedding tensor
/// before the layers load, which keeps the peak memory of loading near the model's size.
fn head_and_embeddings(
    root: &VarBuilder,
    cfg: &ModelConfig,
    lo: LoadOptions,
    enc_w: Tensor,
    dec_w: Tensor,
    bias: Option<Tensor>,
    scale: Option<f64>,
) -> Result<(Linear, Embedding, Embedding)> {
    let lm_w = output_projection(root, cfg, &dec_w)?;
    let tied = lm_w.id() == dec_w.id();
    let lm_head = Linear::prepared(lm_w, bias, lo.q8)?;
    let (enc_embed, dec_embed) = tied_embeddings(&lm_head, tied, enc_w, dec_w, scale);
    Ok((lm_head, enc_embed, dec_embed))
}

/// The embedding shared by encoder and decoder (or the encoder's, when they are separate).
fn shared_embedding(vb: &VarBuilder, cfg: &ModelConfig) -> Result<Tensor> {
    first_of(
        vb,
        &[cfg.vocab_size, cfg.d_model],
        &[
            "shared.weight",
            "encoder.embed_tokens.weight",
            "decoder.embed_tokens.weight",
        ],
    )
}

/// The model from its parts (fresh cache pool).
fn transformer(
    cfg: &ModelConfig,
    encoder: Stack<EncoderLayer>,
    decoder: Stack<DecoderLayer>,
    pre_norm: bool,
    lm_head: Linear,
    output_scale: Option<f64>,
    device: candle_core::Device,
) -> Transformer {
    Transformer {
        config: cfg.clone(),
        encoder,
        decoder,
        pre_norm,
        lm_head,
        output_scale,
        device,
        cache_pool: Default::default(),
    }
}

/// Marian / BART / mBART (`model.encoder.layers.N.self_attn.q_proj.weight`, ...).
fn load_bart_like(cfg: &ModelConfig, root: &VarBuilder, lo: LoadOptions) -> Result<Transformer> {
    let device = root.device().clone();
    // BartModel / MarianModel checkpoints have no "model." prefix.
    let vb = if root.contains_tensor("model.encoder.layers.0.self_attn.q_proj.weight")
        || root.contains_tensor("model.shared.weight")
    {
        root.pp("model")
    } else {
        root.clone()
    };
    let (lm_head, enc_embed, dec_embed) = bart_head_and_embeddings(cfg, root, &vb, lo)?;
    let ffn = |lv: &VarBuilder, ffn_dim: usize| bart_ffn(cfg, lo, lv, ffn_dim);
    let layout = LayerLayout {
        d_model: cfg.d_model,
        eps: cfg.layer_norm_eps,
        lo,
        proj: ["q_proj", "k_proj", "v_proj", "out_proj"],
        bias: true,
        norm: layer_norm,
        ffn: &ffn,
        self_attn: "self_attn",
        self_norm: "self_attn_layer_norm",
        cross_attn: "encoder_attn",
        cross_norm: "encoder_attn_layer_norm",
    };
    let side = |layers, count, heads, head_dim: usize, ffn_dim| SideLayout {
        layers,
        sub: None,
        count,
        heads,
        head_dim,
        ffn_dim,
        scale: Some((head_dim as f64).powf(-0.5)),
        ffn: None,
        ffn_norm: "final_layer_norm",
    };
    let enc_layers = layout.encoder_layers(
        &vb,
        &side(
            "encoder.layers",
            cfg.encoder_layers,
            cfg.encoder_heads,
            cfg.encoder_head_dim,
            cfg.encoder_ffn_dim,
        ),
    )?;
    let dec_layers = layout.decoder_layers(
        &vb,
        &side(
            "decoder.layers",
            cfg.decoder_layers,
            cfg.decoder_heads,
            cfg.decoder_head_dim,
            cfg.decoder_ffn_dim,
        ),
    )?;
    let encoder = bart_stack(cfg, root, &vb, "encoder", enc_embed, enc_layers)?;
    let decoder = bart_stack(cfg, root, &vb, "decoder", dec_embed, dec_layers)?;
    let pre_norm = cfg.arch == Arch::MBart;
    Ok(transformer(
        cfg, encoder, decoder, pre_norm, lm_head, None, device,
    ))
}

/// BART-family output projection (with `final_logits_bias`) and token embeddings
/// (scaled by sqrt(d_model) with `scale_embedding`).
fn bart_head_and_embeddings(
    cfg: &ModelConfig,
    root: &VarBuilder,
    vb: &VarBuilder,
    lo: LoadOptions,
) -> Result<(Linear, Embedding, Embedding)> {
    let d = cfg.d_model;
    let scale = if cfg.scale_embedding {
        Some((d as f64).sqrt())
    } else {
        None
    };
    let enc_w = shared_embedding(vb, cfg)?;
    let dec_w = if cfg.share_encoder_decoder_embeddings {
        enc_w.clone()
    } else {
        tensor(
            vb,
            &[cfg.decoder_vocab_size, d],
            "decoder.embed_tokens.weight",
        )?
    };
    let final_logits_bias = if root.contains_tensor("final_logits_bias") {
        Some(tensor(root, &[1, cfg.decoder_vocab_size], "final_logits_bias")?.squeeze(0)?)
    } else {
        None
    };
    head_and_embeddings(root, cfg, lo, enc_w, dec_w, final_logits_bias, scale)
}

/// BART-family feed-forward block (`fc1`, `fc2`, with biases).
fn bart_ffn(
    cfg: &ModelConfig,
    lo: LoadOptions,
    lv: &VarBuilder,
    ffn_dim: usize,
) -> Result<FeedForward> {
    ffn(cfg, lo, lv, ["fc1", "fc2"], None, ffn_dim, true)
}

/// A feed-forward block from its weight names: `[in, out]` projections and an optional gate
/// (T5 v1.1's `wi_1`).
fn ffn(
    cfg: &ModelConfig,
    lo: LoadOptions,
    v: &VarBuilder,
    [wi, wo]: [&str; 2],
    gate: Option<&str>,
    f: usize,
    bias: bool,
) -> Result<FeedForward> {
    let d = cfg.d_model;
    Ok(FeedForward {
        wi: linear(&v.pp(wi), lo, f, d, bias)?,
        gate: match gate {
            Some(g) => Some(linear(&v.pp(g), lo, f, d, bias)?),
            None => None,
        },
        wo: linear(&v.pp(wo), lo, d, f, bias)?,
        act: cfg.activation,
    })
}

/// One BART-family side (`encoder` / `decoder`) around its layers: positions (Marian
/// sinusoidal, else learned with offset 2), BART's `layernorm_embedding`, mBART's final
/// `layer_norm`.
fn bart_stack<L>(
    cfg: &ModelConfig,
    root: &VarBuilder,
    vb: &VarBuilder,
    side: &str,
    embed: Embedding,
    layers: Vec<L>,
) -> Result<Stack<L>> {
    let (d, eps) = (cfg.d_model, cfg.layer_norm_eps);
    let max_pos = cfg.max_position_embeddings.unwrap_or(1024);
    let positions = if cfg.arch == Arch::Marian {
        Positions::sinusoidal(max_pos, d, root.dtype(), root.device())?
    } else {
        let t = tensor(
            &vb.pp(side).pp("embed_positions"),
            &[max_pos + 2, d],
            "weight",
        )?;
        Positions::learned(t, 2)?
    };
    let embed_norm = match cfg.arch {
        Arch::Marian => None,
        _ => Some(layer_norm(&vb.pp(side).pp("layernorm_embedding"), d, eps)?),
    };
    let final_norm = match cfg.arch {
        Arch::MBart => Some(layer_norm(&vb.pp(side).pp("layer_norm"), d, eps)?),
        _ => None,
    };
    Ok(Stack {
        embed,
        positions: Some(positions),
        embed_norm,
        layers,
        final_norm,
        rel_bias: None,
    })
}

/// T5 / mT5 (`encoder.block.N.layer.0.SelfAttention.q.weight`, `shared.weight`, ...).
fn load_t5(cfg: &ModelConfig, vb: &VarBuilder, lo: LoadOptions) -> Result<Transformer> {
    let device = vb.device().clone();
    let shared = shared_embedding(vb, cfg)?;
    let (lm_head, enc_embed, dec_embed) =
        head_and_embeddings(vb, cfg, lo, shared.clone(), shared, None, None)?;
    let ffn = |lv: &VarBuilder, ffn_dim: usize| t5_ffn(cfg, lo, lv, ffn_dim);
    let layout = LayerLayout {
        d_model: cfg.d_model,
        eps: cfg.layer_norm_eps,
        lo,
        proj: ["q", "k", "v", "o"],
        bias: false,
        norm: rms_norm,
        ffn: &ffn,
        self_attn: "0.SelfAttention",
        self_norm: "0.layer_norm",
        cross_attn: "1.EncDecAttention",
        cross_norm: "1.layer_norm",
    };
    // T5 sizes both sides with the encoder's heads and feed-forward width.
    let side = |layers, count, ffn, ffn_norm| SideLayout {
        layers,
        sub: Some("layer"),
        count,
        heads: cfg.encoder_heads,
        head_dim: cfg.encoder_head_dim,
        ffn_dim: cfg.encoder_ffn_dim,
        scale: None,
        ffn: Some(ffn),
        ffn_norm,
    };
    let enc_layers = layout.encoder_layers(
        vb,
        &side("encoder.block", cfg.encoder_layers, "1", "1.layer_norm"),
    )?;
    let dec_layers = layout.decoder_layers(
        vb,
        &side("decoder.block", cfg.decoder_layers, "2", "2.layer_norm"),
    )?;
    let encoder = t5_stack(cfg, vb, "encoder", true, enc_embed, enc_layers)?;
    let decoder = t5_stack(cfg, vb, "decoder", false, dec_embed, dec_layers)?;
    let output_scale = if cfg.scale_decoder_outputs {
        Some((cfg.d_model as f64).powf(-0.5))
    } else {
        None
    };
    Ok(transformer(
        cfg,
        encoder,
        decoder,
        true,
        lm_head,
        output_scale,
        device,
    ))
}

/// T5 feed-forward block (`DenseReluDense`: `wi`, `wo`, or gated `wi_0`, `wi_1`, `wo`;
/// no biases).
fn t5_ffn(cfg: &ModelConfig, lo: LoadOptions, lv: &VarBuilder, f: usize) -> Result<FeedForward> {
    let fv = lv.pp("DenseReluDense");
    if cfg.gated_ffn {
        ffn(cfg, lo, &fv, ["wi_0", "wo"], Some("wi_1"), f, false)
    } else {
        ffn(cfg, lo, &fv, ["wi", "wo"], None, f, false)
    }
}

/// One T5 side (`encoder` / `decoder`) around its layers: `final_layer_norm` and the
/// relative position bias of its first layer (bidirectional in the encoder).
fn t5_stack<L>(
    cfg: &ModelConfig,
    vb: &VarBuilder,
    side: &str,
    bidirectional: bool,
    embed: Embedding,
    layers: Vec<L>,
) -> Result<Stack<L>> {
    let final_norm = rms_norm(
        &vb.pp(side).pp("final_layer_norm"),
        cfg.d_model,
        cfg.layer_norm_eps,
    )?;
    let nb = cfg.relative_attention_num_buckets;
    let table = tensor(
        &vb.pp(side)
            .pp("block.0.layer.0.SelfAttention.relative_attention_bias"),
        &[nb, cfg.encoder_heads],
        "weight",
    )?;
    Ok(Stack {
        embed,
        positions: None,
        embed_norm: None,
        layers,
        final_norm: Some(final_norm),
        rel_bias: Some(RelativeBias {
            table,
            bidirectional,
            num_buckets: nb,
            max_distance: cfg.relative_attention_max_distance,
        }),
    })
}

/// Build the model for `cfg` from the checkpoint behind `vb` (root prefix).
pub fn build(cfg: &ModelConfig, vb: &VarBuilder, lo: LoadOptions) -> Result<Transformer> {
    let mut m = match cfg.arch {
        Arch::T5 => load_t5(cfg, vb, lo)?,
        _ => load_bart_like(cfg, vb, lo)?,
    };
    if !m.device.is_cpu() && crate::kernels::cuda::enabled() {
        m.fuse_self_attention()?;
    }
    Ok(m)
}
