//! `config.json` of a Hub checkpoint -> the few numbers the model code needs, with
//! transformers' defaults (configuration_marian/bart/mbart/t5/mt5.py) for missing keys.

use std::fmt;

use serde_json::Value;

use super::{ModelError, Result};

/// The encoder-decoder architectures tomtat implements (the one architecture type: the hub
/// layer, manifests and the model builder all use it). Decides weight names and block layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// MarianMTModel: sinusoidal positions, post-LN, decoder starts from pad.
    Marian,
    /// BartForConditionalGeneration: learned positions (offset 2), layernorm_embedding, post-LN.
    Bart,
    /// MBartForConditionalGeneration: like BART but pre-LN with final layer norms.
    MBart,
    /// T5, T5 v1.1 / flan-t5, mT5 (same blocks; config flags differ): RMSNorm pre-norm,
    /// relative position buckets.
    T5,
}

impl Arch {
    pub const ALL: [Arch; 4] = [Arch::Marian, Arch::Bart, Arch::MBart, Arch::T5];

    /// The name used in manifests and config.json `model_type`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Marian => "marian",
            Arch::Bart => "bart",
            Arch::MBart => "mbart",
            Arch::T5 => "t5",
        }
    }

    /// From a manifest `architecture` or config.json `model_type` value.
    pub fn from_model_type(s: &str) -> Option<Arch> {
        match s.trim().to_ascii_lowercase().as_str() {
            "marian" => Some(Arch::Marian),
            "bart" => Some(Arch::Bart),
            "mbart" => Some(Arch::MBart),
            // mT5 (and ViT5, built on it) uses the T5 v1.1 blocks.
            "t5" | "mt5" => Some(Arch::T5),
            _ => None,
        }
    }

    /// From a config.json `architectures` entry (the transformers class name).
    pub fn from_class_name(s: &str) -> Option<Arch> {
        match s {
            "MarianMTModel" | "MarianModel" => Some(Arch::Marian),
            "BartForConditionalGeneration" | "BartModel" => Some(Arch::Bart),
            "MBartForConditionalGeneration" | "MBartModel" => Some(Arch::MBart),
            "T5ForConditionalGeneration"
            | "T5Model"
            | "MT5ForConditionalGeneration"
            | "MT5Model" => Some(Arch::T5),
            _ => None,
        }
    }

    pub fn supported_list() -> String {
        Arch::ALL.map(Arch::name).join(", ")
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Feed-forward activation (transformers' ACT2FN names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    /// Exact (erf) GELU: "gelu".
    Gelu,
    /// tanh approximation: "gelu_new", "gelu_pytorch_tanh", "gelu_fast".
    GeluTanh,
    /// x * sigmoid(1.702 x): "quick_gelu".
    QuickGelu,
    /// "swish" / "silu".
    Silu,
    Tanh,
}

impl Activation {
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "relu" => Self::Relu,
            "gelu" => Self::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Self::GeluTanh,
            "quick_gelu" => Self::QuickGelu,
            "swish" | "silu" => Self::Silu,
            "tanh" => Self::Tanh,
            other => {
                return Err(ModelError::Config(format!(
                    "unsupported activation function {other:?}"
                )))
            }
        })
    }
}

/// Everything the model code reads from `config.json`.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// The architecture (`model_type`, else `architectures`).
    pub arch: Arch,
    /// `model_type` as written (or inferred from `architectures`).
    pub model_type: String,
    /// Encoder (source) vocabulary.
    pub vocab_size: usize,
    /// Decoder (target) vocabulary = width of the logits (Marian may differ from vocab_size).
    pub decoder_vocab_size: usize,
    pub d_model: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub encoder_heads: usize,
    pub decoder_heads: usize,
    /// Per-head width; `d_model / heads` except T5 (`d_kv`).
    pub encoder_head_dim: usize,
    pub decoder_head_dim: usize,
    pub encoder_ffn_dim: usize,
    pub decoder_ffn_dim: usize,
    pub activation: Activation,
    /// T5 v1.1 gated feed-forward (`wi_0`, `wi_1`).
    pub gated_ffn: bool,
    /// Positions table size (Marian/BART/mBART); `None` for T5 (relative positions).
    pub max_position_embeddings: Option<usize>,
    pub scale_embedding: bool,
    pub layer_norm_eps: f64,
    pub relative_attention_num_buckets: usize,
    pub relative_attention_max_distance: usize,
    /// Output projection may reuse the decoder embedding when `lm_head.weight` is absent.
    pub tie_word_embeddings: bool,
    /// Marian: `false` means separate encoder / decoder embeddings.
    pub share_encoder_decoder_embeddings: bool,
    /// T5 v1.0: multiply the decoder output by d_model^-0.5 before the lm_head.
    pub scale_decoder_outputs: bool,
    pub pad_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub bos_token_id: Option<u32>,
    pub decoder_start_token_id: Option<u32>,
    pub forced_eos_token_id: Option<u32>,
}

fn get<'a>(cfg: &'a Value, key: &str) -> Option<&'a Value> {
    cfg.get(key).filter(|v| !v.is_null())
}

fn usize_or(cfg: &Value, key: &str, default: usize) -> Result<usize> {
    match get(cfg, key) {
        None => Ok(default),
        Some(v) => v.as_u64().map(|x| x as usize).ok_or_else(|| {
            ModelError::Config(format!(
                "config key {key:?}: expected an unsigned integer, got {v}"
            ))
        }),
    }
}

fn f64_or(cfg: &Value, key: &str, default: f64) -> Result<f64> {
    match get(cfg, key) {
        None => Ok(default),
        Some(v) => v.as_f64().ok_or_else(|| {
            ModelError::Config(format!("config key {key:?}: expected a number, got {v}"))
        }),
    }
}

fn bool_or(cfg: &Value, key: &str, default: bool) -> Result<bool> {
    match get(cfg, key) {
        None => Ok(default),
        Some(v) => v.as_bool().ok_or_else(|| {
            ModelError::Config(format!("config key {key:?}: expected a boolean, got {v}"))
        }),
    }
}

fn str_or<'a>(cfg: &'a Value, key: &str, default: &'a str) -> Result<&'a str> {
    match get(cfg, key) {
        None => Ok(default),
        Some(v) => v.as_str().ok_or_else(|| {
            ModelError::Config(format!("config key {key:?}: expected a string, got {v}"))
        }),
    }
}

/// A token id; a list (e.g. several EOS ids) yields its first element.
fn token_or(cfg: &Value, key: &str, default: Option<u32>) -> Result<Option<u32>> {
    let v = match get(cfg, key) {
        None => return Ok(default),
        Some(Value::Array(a)) => match a.first() {
            None => return Ok(None),
            Some(v) => v,
        },
        Some(v) => v,
    };
    v.as_u64()
        .and_then(|x| u32::try_from(x).ok())
        .map(Some)
        .ok_or_else(|| {
            ModelError::Config(format!("config key {key:?}: expected a token id, got {v}"))
        })
}

/// The architecture `model_type` names, else the first `architectures` entry that names one;
/// with the `model_type` the config stands for (`mt5` for mT5 classes).
fn detect(cfg: &Value) -> Result<(Arch, String)> {
    if let Some(mt) = get(cfg, "model_type").and_then(Value::as_str) {
        if let Some(a) = Arch::from_model_type(mt) {
            return Ok((a, mt.trim().to_ascii_lowercase()));
        }
    }
    let archs: Vec<&str> = get(cfg, "architectures")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for a in &archs {
        if let Some(arch) = Arch::from_class_name(a) {
            let mt = if a.starts_with("MT5") {
                "mt5"
            } else {
                arch.name()
            };
            return Ok((arch, mt.to_string()));
        }
    }
    Err(ModelError::UnknownArchitecture(format!(
        "model_type {:?}, architectures {:?}: supported are marian, bart, mbart, t5, mt5",
        get(cfg, "model_type")
            .and_then(Value::as_str)
            .unwrap_or("<missing>"),
        archs
    )))
}

impl ModelConfig {
    /// Parse a `config.json` value; missing keys take transformers' defaults for the family.
    pub fn from_json(cfg: &Value) -> Result<Self> {
        if !cfg.is_object() {
            return Err(ModelError::Config(
                "config.json is not a JSON object".into(),
            ));
        }
        let (arch, model_type) = detect(cfg)?;
        let c = match arch {
            Arch::T5 => Self::t5(cfg, arch, model_type)?,
            _ => Self::bart_like(cfg, arch, model_type)?,
        };
        c.validate()?;
        Ok(c)
    }

    fn bart_like(cfg: &Value, arch: Arch, model_type: String) -> Result<Self> {
        // Defaults differ per family only in token ids and vocab (see configuration_*.py).
        let (vocab, pad, eos, bos, start, forced_eos) = match arch {
            Arch::Marian => (58101, Some(58100), Some(0), None, Some(58100), Some(0)),
            Arch::Bart => (50265, Some(1), Some(2), Some(0), Some(2), Some(2)),
            _ => (50265, Some(1), Some(2), Some(0), None, Some(2)),
        };
        let vocab_size = usize_or(cfg, "vocab_size", vocab)?;
        let decoder_vocab_size = if arch == Arch::Marian {
            usize_or(cfg, "decoder_vocab_size", vocab_size)?
        } else {
            vocab_size
        };
        let d_model = usize_or(cfg, "d_model", 1024)?;
        let encoder_heads = usize_or(cfg, "encoder_attention_heads", 16)?;
        let decoder_heads = usize_or(cfg, "decoder_attention_heads", 16)?;
        if encoder_heads == 0
            || decoder_heads == 0
            || d_model % encoder_heads != 0
            || d_model % decoder_heads != 0
        {
            return Err(ModelError::Config(format!(
                "d_model {d_model} is not divisible by the attention heads ({encoder_heads} encoder, {decoder_heads} decoder)"
            )));
        }
        Ok(Self {
            arch,
            model_type,
            vocab_size,
            decoder_vocab_size,
            d_model,
            encoder_layers: usize_or(cfg, "encoder_layers", 12)?,
            decoder_layers: usize_or(cfg, "decoder_layers", 12)?,
            encoder_heads,
            decoder_heads,
            encoder_head_dim: d_model / encoder_heads,
            decoder_head_dim: d_model / decoder_heads,
            encoder_ffn_dim: usize_or(cfg, "encoder_ffn_dim", 4096)?,
            decoder_ffn_dim: usize_or(cfg, "decoder_ffn_dim", 4096)?,
            activation: Activation::parse(str_or(cfg, "activation_function", "gelu")?)?,
            gated_ffn: false,
            max_position_embeddings: Some(usize_or(cfg, "max_position_embeddings", 1024)?),
            scale_embedding: bool_or(cfg, "scale_embedding", false)?,
            layer_norm_eps: 1e-5, // nn.LayerNorm default; these configs have no eps key
            relative_attention_num_buckets: 0,
            relative_attention_max_distance: 0,
            tie_word_embeddings: bool_or(cfg, "tie_word_embeddings", true)?,
            share_encoder_decoder_embeddings: arch != Arch::Marian
                || bool_or(cfg, "share_encoder_decoder_embeddings", true)?,
            scale_decoder_outputs: false,
            pad_token_id: token_or(cfg, "pad_token_id", pad)?,
            eos_token_id: token_or(cfg, "eos_token_id", eos)?,
            bos_token_id: token_or(cfg, "bos_token_id", bos)?,
            decoder_start_token_id: token_or(cfg, "decoder_start_token_id", start)?,
            forced_eos_token_id: token_or(cfg, "forced_eos_token_id", forced_eos)?,
        })
    }

    fn t5(cfg: &Value, arch: Arch, model_type: String) -> Result<Self> {
        let mt5 = model_type == "mt5";
        let proj = str_or(
            cfg,
            "feed_forward_proj",
            if mt5 { "gated-gelu" } else { "relu" },
        )?;
        let parts: Vec<&str> = proj.split('-').collect();
        let (gated, act) = match parts.as_slice() {
            [a] => (false, *a),
            ["gated", a] => (true, *a),
            _ => {
                return Err(ModelError::Config(format!(
                    "feed_forward_proj {proj:?}: expected \"ACT\" or \"gated-ACT\""
                )))
            }
        };
        // configuration_t5.py: "gated-gelu" means gelu_new (tanh approximation).
        let activation = if proj == "gated-gelu" {
            Activation::GeluTanh
        } else {
            Activation::parse(act)?
        };
        let num_layers = usize_or(cfg, "num_layers", if mt5 { 8 } else { 6 })?;
        let heads = usize_or(cfg, "num_heads", if mt5 { 6 } else { 8 })?;
        let d_ff = usize_or(cfg, "d_ff", if mt5 { 1024 } else { 2048 })?;
        let tie = bool_or(cfg, "tie_word_embeddings", true)?;
        // transformers: T5 scales the decoder output iff the checkpoint's config did not say
        // tie_word_embeddings=false (newer saves write scale_decoder_outputs); mT5 never does.
        let scale_decoder_outputs = if mt5 {
            false
        } else {
            bool_or(cfg, "scale_decoder_outputs", tie)?
        };
        let vocab_size = usize_or(cfg, "vocab_size", if mt5 { 250112 } else { 32128 })?;
        let d_kv = usize_or(cfg, "d_kv", 64)?;
        if heads == 0 {
            return Err(ModelError::Config("num_heads is 0".into()));
        }
        Ok(Self {
            arch,
            model_type,
            vocab_size,
            decoder_vocab_size: vocab_size,
            d_model: usize_or(cfg, "d_model", 512)?,
            encoder_layers: num_layers,
            decoder_layers: usize_or(cfg, "num_decoder_layers", num_layers)?,
            encoder_heads: heads,
            decoder_heads: heads,
            encoder_head_dim: d_kv,
            decoder_head_dim: d_kv,
            encoder_ffn_dim: d_ff,
            decoder_ffn_dim: d_ff,
            activation,
            gated_ffn: gated,
            max_position_embeddings: None,
            scale_embedding: false,
            layer_norm_eps: f64_or(cfg, "layer_norm_epsilon", 1e-6)?,
            relative_attention_num_buckets: usize_or(cfg, "relative_attention_num_buckets", 32)?,
            relative_attention_max_distance: usize_or(cfg, "relative_attention_max_distance", 128)?,
            tie_word_embeddings: tie,
            share_encoder_decoder_embeddings: true,
            scale_decoder_outputs,
            pad_token_id: token_or(cfg, "pad_token_id", Some(0))?,
            eos_token_id: token_or(cfg, "eos_token_id", Some(1))?,
            bos_token_id: token_or(cfg, "bos_token_id", None)?,
            decoder_start_token_id: token_or(cfg, "decoder_start_token_id", Some(0))?,
            forced_eos_token_id: token_or(cfg, "forced_eos_token_id", None)?,
        })
    }

    fn validate(&self) -> Result<()> {
        let zero = [
            ("vocab_size", self.vocab_size),
            ("decoder_vocab_size", self.decoder_vocab_size),
            ("d_model", self.d_model),
            ("head_dim", self.encoder_head_dim),
            ("encoder_ffn_dim", self.encoder_ffn_dim),
            ("decoder_ffn_dim", self.decoder_ffn_dim),
        ];
        for (k, v) in zero {
            if v == 0 {
                return Err(ModelError::Config(format!("{k} is 0")));
            }
        }
        if self.arch == Arch::T5 {
            let nb = self.relative_attention_num_buckets;
            if nb < 4 || self.relative_attention_max_distance < nb / 2 {
                return Err(ModelError::Config(format!(
                    "relative_attention_num_buckets {nb} / max_distance {} are not usable",
                    self.relative_attention_max_distance
                )));
            }
        }
        if self.max_position_embeddings == Some(0) {
            return Err(ModelError::Config("max_position_embeddings is 0".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_follow_transformers() {
        let c = ModelConfig::from_json(&json!({"model_type": "marian"})).unwrap();
        assert_eq!(c.arch, Arch::Marian);
        assert_eq!((c.vocab_size, c.decoder_vocab_size), (58101, 58101));
        assert_eq!(c.pad_token_id, Some(58100));
        assert_eq!(c.decoder_start_token_id, Some(58100));
        assert!(!c.scale_embedding);

        let c = ModelConfig::from_json(&json!({"architectures": ["T5ForConditionalGeneration"]}))
            .unwrap();
        assert_eq!(c.arch, Arch::T5);
        assert!(c.scale_decoder_outputs && !c.gated_ffn);
        assert_eq!(c.activation, Activation::Relu);

        let c = ModelConfig::from_json(
            &json!({"model_type": "t5", "feed_forward_proj": "gated-gelu",
            "tie_word_embeddings": false}),
        )
        .unwrap();
        assert!(!c.scale_decoder_outputs && c.gated_ffn);
        assert_eq!(c.activation, Activation::GeluTanh);

        let c = ModelConfig::from_json(&json!({"model_type": "mt5"})).unwrap();
        assert!(!c.scale_decoder_outputs && c.gated_ffn);
        assert_eq!(c.vocab_size, 250112);

        let c = ModelConfig::from_json(&json!({"model_type": "mbart", "eos_token_id": [2, 5]}))
            .unwrap();
        assert_eq!(c.eos_token_id, Some(2));
        assert_eq!(c.decoder_start_token_id, None);
    }

    #[test]
    fn bad_configs_are_errors() {
        let e = ModelConfig::from_json(&json!({"model_type": "gpt2"})).unwrap_err();
        assert!(matches!(e, ModelError::UnknownArchitecture(_)), "{e}");
        let e = ModelConfig::from_json(
            &json!({"model_type": "bart", "d_model": 10, "encoder_attention_heads": 3}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("divisible"), "{e}");
        let e =
            ModelConfig::from_json(&json!({"model_type": "bart", "activation_function": "bogus"}))
                .unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = ModelConfig::from_json(&json!({"model_type": "t5", "d_model": "x"})).unwrap_err();
        assert!(e.to_string().contains("d_model"), "{e}");
        assert!(ModelConfig::from_json(&json!([1, 2])).is_err());
    }
}
