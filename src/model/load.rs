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

/// Marian / BART / mBART (`model.encoder.layers.N.self_attn.q_proj.weight`, ...).
fn load_bart_like(cfg: &ModelConfig, root: &VarBuilder, lo: LoadOptions) -> Result<Transformer> {
    let device = root.device().clone();
    let d = cfg.d_model;
    let eps = cfg.layer_norm_eps;
    // BartModel / MarianModel checkpoints have no "model." prefix.
    let vb = if root.contains_tensor("model.encoder.layers.0.self_attn.q_proj.weight")
        || root.contains_tensor("model.shared.weight")
    {
        root.pp("model")
    } else {
        root.clone()
    };
    let pre_norm = cfg.arch == Arch::MBart;
    let scale = if cfg.scale_embedding {
        Some((d as f64).sqrt())
    } else {
        None
    };
    let enc_w = first_of(
        &vb,
        &[cfg.vocab_size, d],
        &[
            "shared.weight",
            "encoder.embed_tokens.weight",
            "decoder.embed_tokens.weight",
        ],
    )?;
    let dec_w = if cfg.share_encoder_decoder_embeddings {
        enc_w.clone()
    } else {
        tensor(
            &vb,
            &[cfg.decoder_vocab_size, d],
            "decoder.embed_tokens.weight",
        )?
    };
    // The output projection first: packing it frees the (tied) embedding tensor before the
    // layers load, which keeps the peak memory of loading near the model's size.
    let final_logits_bias = if root.contains_tensor("final_logits_bias") {
        Some(tensor(root, &[1, cfg.decoder_vocab_size], "final_logits_bias")?.squeeze(0)?)
    } else {
        None
    };
    let lm_w = output_projection(root, cfg, &dec_w)?;
    let tied = lm_w.id() == dec_w.id();
    let lm_head = Linear::prepared(lm_w, final_logits_bias, lo.q8)?;
    let (enc_embed, dec_embed) = tied_embeddings(&lm_head, tied, enc_w, dec_w, scale);
    let max_pos = cfg.max_position_embeddings.unwrap_or(1024);
    let positions = |side: &str| -> Result<Positions> {
        if cfg.arch == Arch::Marian {
            Positions::sinusoidal(max_pos, d, root.dtype(), &device)
        } else {
            let t = tensor(
                &vb.pp(side).pp("embed_positions"),
                &[max_pos + 2, d],
                "weight",
            )?;
            Positions::learned(t, 2)
        }
    };
    let embed_norm = |side: &str| -> Result<Option<Norm>> {
        match cfg.arch {
            Arch::Marian => Ok(None),
            _ => Ok(Some(layer_norm(
                &vb.pp(side).pp("layernorm_embedding"),
                d,
                eps,
            )?)),
        }
    };
    let final_norm = |side: &str| -> Result<Option<Norm>> {
        match cfg.arch {
            Arch::MBart => Ok(Some(layer_norm(&vb.pp(side).pp("layer_norm"), d, eps)?)),
            _ => Ok(None),
        }
    };
    let ffn = |lv: &VarBuilder, ffn_dim: usize| -> Result<FeedForward> {
        Ok(FeedForward {
            wi: linear(&lv.pp("fc1"), lo, ffn_dim, d, true)?,
            gate: None,
            wo: linear(&lv.pp("fc2"), lo, d, ffn_dim, true)?,
            act: cfg.activation,
        })
    };
    let proj = ["q_proj", "k_proj", "v_proj", "out_proj"];
    let enc_scale = Some((cfg.encoder_head_dim as f64).powf(-0.5));
    let dec_scale = Some((cfg.decoder_head_dim as f64).powf(-0.5));

    let mut enc_layers = Vec::with_capacity(cfg.encoder_layers);
    for i in 0..cfg.encoder_layers {
        let lv = vb.pp("encoder.layers").pp(i);
        enc_layers.push(EncoderLayer {
            self_attn: attention(
                &lv.pp("self_attn"),
                lo,
                proj,
                d,
                cfg.encoder_heads,
                cfg.encoder_head_dim,
                true,
                enc_scale,
            )?,
            self_norm: layer_norm(&lv.pp("self_attn_layer_norm"), d, eps)?,
            ffn: ffn(&lv, cfg.encoder_ffn_dim)?,
            ffn_norm: layer_norm(&lv.pp("final_layer_norm"), d, eps)?,
        });
    }
    let mut dec_layers = Vec::with_capacity(cfg.decoder_layers);
    for i in 0..cfg.decoder_layers {
        let lv = vb.pp("decoder.layers").pp(i);
        let (h, hd) = (cfg.decoder_heads, cfg.decoder_head_dim);
        dec_layers.push(DecoderLayer {
            self_attn: attention(&lv.pp("self_attn"), lo, proj, d, h, hd, true, dec_scale)?,
            self_norm: layer_norm(&lv.pp("self_attn_layer_norm"), d, eps)?,
            cross_attn: attention(&lv.pp("encoder_attn"), lo, proj, d, h, hd, true, dec_scale)?,
            cross_norm: layer_norm(&lv.pp("encoder_attn_layer_norm"), d, eps)?,
            ffn: ffn(&lv, cfg.decoder_ffn_dim)?,
            ffn_norm: layer_norm(&lv.pp("final_layer_norm"), d, eps)?,
        });
    }
    Ok(Transformer {
        config: cfg.clone(),
        encoder: Stack {
            embed: enc_embed,
            positions: Some(positions("encoder")?),
            embed_norm: embed_norm("encoder")?,
            layers: enc_layers,
            final_norm: final_norm("encoder")?,
            rel_bias: None,
        },
        decoder: Stack {
            embed: dec_embed,
            positions: Some(positions("decoder")?),
            embed_norm: embed_norm("decoder")?,
            layers: dec_layers,
            final_norm: final_norm("decoder")?,
            rel_bias: None,
        },
        pre_norm,
        lm_head,
        output_scale: None,
        device,
        cache_pool: Default::default(),
    })
}

/// T5 / mT5 (`encoder.block.N.layer.0.SelfAttention.q.weight`, `shared.weight`, ...).
fn load_t5(cfg: &ModelConfig, vb: &VarBuilder, lo: LoadOptions) -> Result<Transformer> {
    let device = vb.device().clone();
    let d = cfg.d_model;
    let eps = cfg.layer_norm_eps;
    let (h, hd) = (cfg.encoder_heads, cfg.encoder_head_dim);
    let nb = cfg.relative_attention_num_buckets;
    let shared = first_of(
        vb,
        &[cfg.vocab_size, d],
        &[
            "shared.weight",
            "encoder.embed_tokens.weight",
            "decoder.embed_tokens.weight",
        ],
    )?;
    let lm_w = output_projection(vb, cfg, &shared)?;
    let tied = lm_w.id() == shared.id();
    let lm_head = Linear::prepared(lm_w, None, lo.q8)?;
    let (enc_embed, dec_embed) = tied_embeddings(&lm_head, tied, shared.clone(), shared, None);
    let names = ["q", "k", "v", "o"];
    let ffn = |lv: &VarBuilder| -> Result<FeedForward> {
        let fv = lv.pp("DenseReluDense");
        let f = cfg.encoder_ffn_dim;
        Ok(if cfg.gated_ffn {
            FeedForward {
                wi: linear(&fv.pp("wi_0"), lo, f, d, false)?,
                gate: Some(linear(&fv.pp("wi_1"), lo, f, d, false)?),
                wo: linear(&fv.pp("wo"), lo, d, f, false)?,
                act: cfg.activation,
            }
        } else {
            FeedForward {
                wi: linear(&fv.pp("wi"), lo, f, d, false)?,
                gate: None,
                wo: linear(&fv.pp("wo"), lo, d, f, false)?,
                act: cfg.activation,
            }
        })
    };
    let rel = |side: &str, bidirectional: bool| -> Result<RelativeBias> {
        let t = tensor(
            &vb.pp(side)
                .pp("block.0.layer.0.SelfAttention.relative_attention_bias"),
            &[nb, h],
            "weight",
        )?;
        Ok(RelativeBias {
            table: t,
            bidirectional,
            num_buckets: nb,
            max_distance: cfg.relative_attention_max_distance,
        })
    };
    let mut enc_layers = Vec::with_capacity(cfg.encoder_layers);
    for i in 0..cfg.encoder_layers {
        let lv = vb.pp("encoder.block").pp(i).pp("layer");
        enc_layers.push(EncoderLayer {
            self_attn: attention(&lv.pp("0.SelfAttention"), lo, names, d, h, hd, false, None)?,
            self_norm: rms_norm(&lv.pp("0.layer_norm"), d, eps)?,
            ffn: ffn(&lv.pp("1"))?,
            ffn_norm: rms_norm(&lv.pp("1.layer_norm"), d, eps)?,
        });
    }
    let mut dec_layers = Vec::with_capacity(cfg.decoder_layers);
    for i in 0..cfg.decoder_layers {
        let lv = vb.pp("decoder.block").pp(i).pp("layer");
        dec_layers.push(DecoderLayer {
            self_attn: attention(&lv.pp("0.SelfAttention"), lo, names, d, h, hd, false, None)?,
            self_norm: rms_norm(&lv.pp("0.layer_norm"), d, eps)?,
            cross_attn: attention(
                &lv.pp("1.EncDecAttention"),
                lo,
                names,
                d,
                h,
                hd,
                false,
                None,
            )?,
            cross_norm: rms_norm(&lv.pp("1.layer_norm"), d, eps)?,
            ffn: ffn(&lv.pp("2"))?,
            ffn_norm: rms_norm(&lv.pp("2.layer_norm"), d, eps)?,
        });
    }
    let stack_final = |side: &str| rms_norm(&vb.pp(side).pp("final_layer_norm"), d, eps);
    Ok(Transformer {
        config: cfg.clone(),
        encoder: Stack {
            embed: enc_embed,
            positions: None,
            embed_norm: None,
            layers: enc_layers,
            final_norm: Some(stack_final("encoder")?),
            rel_bias: Some(rel("encoder", true)?),
        },
        decoder: Stack {
            embed: dec_embed,
            positions: None,
            embed_norm: None,
            layers: dec_layers,
            final_norm: Some(stack_final("decoder")?),
            rel_bias: Some(rel("decoder", false)?),
        },
        pre_norm: true,
        lm_head,
        output_scale: if cfg.scale_decoder_outputs {
            Some((d as f64).powf(-0.5))
        } else {
            None
        },
        device,
        cache_pool: Default::default(),
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
