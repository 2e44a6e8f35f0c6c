//! Generation parameters, read like transformers 5.x reads them.
//!
//! transformers loads `generation_config.json` when the model directory has one and otherwise
//! builds the generation config from the generation keys of `config.json`; it never mixes the
//! two. Every field here is an `Option` because transformers' semantics depend on whether a
//! value was set at all (e.g. an unset `max_length` means "20 new tokens", a set one counts
//! the decoder start token). [`GenerationConfig::resolve`] turns the options into the concrete
//! parameters the search uses, with transformers' defaults.

use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::GenerateError;

/// One token id or a list of them (`eos_token_id`, `forced_eos_token_id` accept both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(t) => vec![*t],
            TokenIds::Many(v) => v.clone(),
        }
    }
}

/// transformers' `early_stopping`: `true`, `false` or `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EarlyStopping {
    /// Stop a source when no running beam can beat the worst finished one, estimated at the
    /// current length (transformers' default heuristic).
    #[default]
    Heuristic,
    /// Stop a source as soon as `num_beams` hypotheses are finished.
    True,
    /// Canonical beam search: with a positive length penalty the estimate uses `max_length`.
    Never,
}

impl Serialize for EarlyStopping {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EarlyStopping::Heuristic => s.serialize_bool(false),
            EarlyStopping::True => s.serialize_bool(true),
            EarlyStopping::Never => s.serialize_str("never"),
        }
    }
}

impl<'de> Deserialize<'de> for EarlyStopping {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(false) => Ok(EarlyStopping::Heuristic),
            Raw::Bool(true) => Ok(EarlyStopping::True),
            Raw::Str(s) if s == "never" => Ok(EarlyStopping::Never),
            Raw::Str(s) => Err(serde::de::Error::custom(format!(
                "early_stopping must be true, false or \"never\", not {s:?}"
            ))),
        }
    }
}

/// The generation parameters transformers would use for a model, before resolution.
/// Unknown keys in the JSON files are ignored; known keys with a wrong type are errors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationConfig {
    /// Maximum total decoder length, decoder start token included.
    pub max_length: Option<usize>,
    /// Maximum number of generated tokens; takes precedence over `max_length`.
    pub max_new_tokens: Option<usize>,
    /// Minimum total decoder length, decoder start token included (EOS masked below it).
    pub min_length: Option<usize>,
    /// Minimum number of generated tokens; takes precedence over `min_length`.
    pub min_new_tokens: Option<usize>,
    pub num_beams: Option<usize>,
    pub length_penalty: Option<f64>,
    pub early_stopping: Option<EarlyStopping>,
    pub no_repeat_ngram_size: Option<usize>,
    pub repetition_penalty: Option<f64>,
    pub bad_words_ids: Option<Vec<Vec<u32>>>,
    pub suppress_tokens: Option<Vec<u32>>,
    pub forced_bos_token_id: Option<u32>,
    pub forced_eos_token_id: Option<TokenIds>,
    pub decoder_start_token_id: Option<u32>,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<TokenIds>,
    pub pad_token_id: Option<u32>,
    pub remove_invalid_values: Option<bool>,
    pub renormalize_logits: Option<bool>,
    /// Sampling is not supported: `true` is reported and decoding stays deterministic.
    pub do_sample: Option<bool>,
    pub num_return_sequences: Option<usize>,
    // Parameters that change the output and that we do not implement: kept so that
    // `resolve` can refuse them instead of silently decoding differently.
    pub num_beam_groups: Option<usize>,
    pub diversity_penalty: Option<f64>,
    pub encoder_repetition_penalty: Option<f64>,
    pub encoder_no_repeat_ngram_size: Option<usize>,
    pub exponential_decay_length_penalty: Option<serde_json::Value>,
    pub sequence_bias: Option<serde_json::Value>,
    pub begin_suppress_tokens: Option<Vec<u32>>,
    pub constraints: Option<serde_json::Value>,
    pub force_words_ids: Option<serde_json::Value>,
    pub guidance_scale: Option<f64>,
    /// From the model's `config.json` (not a generation key): caps the default `max_length`.
    #[serde(skip)]
    pub max_position_embeddings: Option<usize>,
    /// `decoder_start_token_id` of `config.json`, used only where transformers would fail
    /// (neither the generation config's decoder start nor its BOS token is set).
    #[serde(skip)]
    pub model_decoder_start_token_id: Option<u32>,
}

impl GenerationConfig {
    /// Reads the generation config of a model directory: `generation_config.json` if present,
    /// else the generation keys of `config.json` (as transformers 5.x does).
    pub fn from_model_dir(dir: &Path) -> Result<Self, GenerateError> {
        let config: serde_json::Value = read_json(&dir.join("config.json"))?;
        Self::from_model_dir_with_config(dir, &config)
    }

    /// [`Self::from_model_dir`] given the directory's `config.json` (`config`) as the model
    /// load read it: only `generation_config.json` is read here.
    pub fn from_model_dir_with_config(
        dir: &Path,
        config: &serde_json::Value,
    ) -> Result<Self, GenerateError> {
        let config_path = dir.join("config.json");
        let gen_path = dir.join("generation_config.json");
        let generation = if gen_path.is_file() {
            Some(read_json(&gen_path)?)
        } else {
            None
        };
        Self::from_json(generation.as_ref(), config).map_err(|e| match e {
            GenerateError::Config(msg) => GenerateError::Config(format!(
                "{}: {msg}",
                if generation.is_some() {
                    gen_path.display()
                } else {
                    config_path.display()
                }
            )),
            other => other,
        })
    }

    /// Same as [`Self::from_model_dir`] from already parsed JSON: `generation` is the
    /// content of `generation_config.json` (if any), `config` that of `config.json`.
    pub fn from_json(
        generation: Option<&serde_json::Value>,
        config: &serde_json::Value,
    ) -> Result<Self, GenerateError> {
        let source = generation.unwrap_or(config);
        let mut cfg: GenerationConfig = serde_json::from_value(source.clone())
            .map_err(|e| GenerateError::Config(format!("bad generation parameter: {e}")))?;
        cfg.max_position_embeddings = match config.get("max_position_embeddings") {
            Some(v) => v.as_u64().map(|n| n as usize),
            // transformers' class default for the families that have learned/sinusoidal
            // positions; T5 has no such limit.
            None => match config.get("model_type").and_then(|m| m.as_str()) {
                Some("marian" | "bart" | "mbart") => Some(1024),
                _ => None,
            },
        };
        cfg.model_decoder_start_token_id = config
            .get("decoder_start_token_id")
            .and_then(|v| v.as_u64())
            .and_then(|v| u32::try_from(v).ok());
        Ok(cfg)
    }

    /// The concrete parameters for one `generate` call, with transformers' defaults and
    /// length bookkeeping. `vocab_size` is the width of the model's logits.
    pub fn resolve(&self, vocab_size: usize) -> Result<Resolved, GenerateError> {
        self.refuse_unsupported()?;
        if self.do_sample == Some(true) {
            tracing::warn!("do_sample=true in the generation config: tomtat decodes deterministically (greedy / beam search)");
        }

        let num_beams = self.num_beams.unwrap_or(1);
        if num_beams == 0 {
            return config_err("num_beams must be at least 1".into());
        }
        let eos = self
            .eos_token_id
            .as_ref()
            .map(|e| e.to_vec())
            .unwrap_or_default();
        let decoder_start = self.decoder_start()?;
        let pad = match (self.pad_token_id, eos.first()) {
            (Some(p), _) => p,
            (None, Some(&e)) => e,
            (None, None) => 0,
        };

        // transformers: the decoder prompt is the decoder start token (length 1).
        let prompt_len = 1usize;
        let max_length = self.resolved_max_length(prompt_len)?;
        let min_length = match self.min_new_tokens {
            Some(n) => n + prompt_len,
            None => self.min_length.unwrap_or(0),
        };
        let (repetition_penalty, length_penalty) = self.penalties()?;
        let tokens = self.token_rules(&eos, vocab_size)?;
        if (decoder_start as usize) >= vocab_size {
            return config_err(format!(
                "decoder start token {decoder_start} is outside the vocabulary (size {vocab_size})"
            ));
        }

        Ok(Resolved {
            num_beams,
            length_penalty,
            early_stopping: self.early_stopping.unwrap_or_default(),
            max_length,
            decoder_start,
            pad,
            eos,
            processors: super::processors::Processors {
                vocab_size,
                repetition_penalty,
                no_repeat_ngram_size: self.no_repeat_ngram_size.unwrap_or(0),
                bad_single: tokens.bad_single,
                bad_multi: tokens.bad_multi,
                min_length,
                min_new_tokens: self.min_new_tokens.unwrap_or(0),
                prompt_len,
                eos: tokens.eos_in_vocab,
                forced_bos: tokens.forced_bos,
                forced_eos: tokens.forced_eos,
                max_length,
                remove_invalid_values: self.remove_invalid_values.unwrap_or(false),
                suppress: tokens.suppress,
                renormalize: self.renormalize_logits.unwrap_or(false),
            },
        })
    }

    /// Refuses the parameters that change the output and that tomtat does not implement.
    fn refuse_unsupported(&self) -> Result<(), GenerateError> {
        for (name, set) in [
            (
                "num_beam_groups",
                self.num_beam_groups.is_some_and(|g| g > 1),
            ),
            (
                "diversity_penalty",
                self.diversity_penalty.is_some_and(|d| d != 0.0),
            ),
            (
                "encoder_repetition_penalty",
                self.encoder_repetition_penalty.is_some_and(|p| p != 1.0),
            ),
            (
                "encoder_no_repeat_ngram_size",
                self.encoder_no_repeat_ngram_size.is_some_and(|n| n > 0),
            ),
            (
                "exponential_decay_length_penalty",
                self.exponential_decay_length_penalty
                    .as_ref()
                    .is_some_and(|v| !v.is_null()),
            ),
            (
                "sequence_bias",
                self.sequence_bias.as_ref().is_some_and(|v| !v.is_null()),
            ),
            (
                "begin_suppress_tokens",
                self.begin_suppress_tokens
                    .as_ref()
                    .is_some_and(|v| !v.is_empty()),
            ),
            (
                "constraints",
                self.constraints.as_ref().is_some_and(|v| !v.is_null()),
            ),
            (
                "force_words_ids",
                self.force_words_ids.as_ref().is_some_and(|v| !v.is_null()),
            ),
            (
                "guidance_scale",
                self.guidance_scale.is_some_and(|g| g != 1.0),
            ),
        ] {
            if set {
                return config_err(format!("generation parameter {name} is not supported"));
            }
        }
        Ok(())
    }

    /// The decoder start token: the generation config's, else its BOS, else `config.json`'s.
    fn decoder_start(&self) -> Result<u32, GenerateError> {
        match self
            .decoder_start_token_id
            .or(self.bos_token_id)
            .or(self.model_decoder_start_token_id)
        {
            Some(t) => Ok(t),
            None => config_err(
                "neither decoder_start_token_id nor bos_token_id is set for an \
                 encoder-decoder model"
                    .into(),
            ),
        }
    }

    /// Total decoder length limit (`prompt_len` included): `max_new_tokens`, else
    /// `max_length`, else 20 new tokens, capped by the model's decoder positions.
    fn resolved_max_length(&self, prompt_len: usize) -> Result<usize, GenerateError> {
        let max_length = if let Some(n) = self.max_new_tokens {
            n + prompt_len
        } else if let Some(m) = self.max_length {
            m
        } else {
            let m = 20 + prompt_len;
            match self.max_position_embeddings {
                Some(p) => m.min(p),
                None => m,
            }
        };
        // The decoder feeds positions 0..max_length-2: a model with learned or sinusoidal
        // positions cannot go further (transformers would fail there with an index error).
        let max_length = match self.max_position_embeddings {
            Some(p) if max_length > p + 1 => {
                tracing::warn!(
                    "max_length {max_length} exceeds the model's {p} decoder positions: \
                     generating at most {p} tokens"
                );
                p + 1
            }
            _ => max_length,
        };
        if max_length <= prompt_len {
            return config_err(format!(
                "max_length {max_length} leaves no room to generate after the decoder start \
                 token (set max_new_tokens >= 1)"
            ));
        }
        Ok(max_length)
    }

    /// Checked repetition penalty (`None` when it is 1) and length penalty (default 1).
    fn penalties(&self) -> Result<(Option<f32>, f64), GenerateError> {
        let repetition_penalty = match self.repetition_penalty {
            Some(p) if p <= 0.0 || !p.is_finite() => {
                return config_err(format!("repetition_penalty must be > 0, not {p}"))
            }
            Some(p) if p != 1.0 => Some(p as f32),
            _ => None,
        };
        let length_penalty = self.length_penalty.unwrap_or(1.0);
        if !length_penalty.is_finite() {
            return config_err(format!(
                "length_penalty must be finite, not {length_penalty}"
            ));
        }
        Ok((repetition_penalty, length_penalty))
    }

    /// The token lists of the logits processors, checked against the vocabulary.
    fn token_rules(&self, eos: &[u32], vocab_size: usize) -> Result<TokenRules, GenerateError> {
        let (bad_single, bad_multi) = self.bad_words(eos, vocab_size)?;
        let forced_bos = match self.forced_bos_token_id {
            Some(t) => Some(check_id("forced_bos_token_id", t, vocab_size)?),
            None => None,
        };
        let forced_eos = match &self.forced_eos_token_id {
            Some(ids) => {
                let ids = ids.to_vec();
                for &t in &ids {
                    check_id("forced_eos_token_id", t, vocab_size)?;
                }
                ids
            }
            None => Vec::new(),
        };
        let suppress = match &self.suppress_tokens {
            Some(ids) => ids
                .iter()
                .copied()
                .filter(|&t| (t as usize) < vocab_size)
                .collect(),
            None => Vec::new(),
        };
        // EOS ids outside the vocabulary can never be generated; they only matter to masks.
        let eos_in_vocab: Vec<u32> = eos
            .iter()
            .copied()
            .filter(|&t| (t as usize) < vocab_size)
            .collect();
        Ok(TokenRules {
            bad_single,
            bad_multi,
            forced_bos,
            forced_eos,
            suppress,
            eos_in_vocab,
        })
    }

    /// `bad_words_ids` split into single banned tokens and (prefix, last token) sequences,
    /// deduplicated, without the single-token sequences that are an EOS token.
    fn bad_words(&self, eos: &[u32], vocab_size: usize) -> Result<BadWords, GenerateError> {
        let mut bad_single = Vec::new();
        let mut bad_multi: Vec<(Vec<u32>, u32)> = Vec::new();
        if let Some(words) = &self.bad_words_ids {
            for w in words {
                // transformers drops the single-token sequences that are an EOS token.
                if w.len() == 1 && eos.contains(&w[0]) {
                    continue;
                }
                let Some((&last, prefix)) = w.split_last() else {
                    return config_err("bad_words_ids contains an empty sequence".into());
                };
                for &t in w {
                    check_id("bad_words_ids token", t, vocab_size)?;
                }
                if prefix.is_empty() {
                    if !bad_single.contains(&last) {
                        bad_single.push(last);
                    }
                } else if !bad_multi.iter().any(|(p, l)| p == prefix && *l == last) {
                    bad_multi.push((prefix.to_vec(), last));
                }
            }
        }
        Ok((bad_single, bad_multi))
    }
}

/// Banned single tokens, and banned sequences as (prefix, last token).
type BadWords = (Vec<u32>, Vec<(Vec<u32>, u32)>);

/// Token lists of [`GenerationConfig::token_rules`], for the logits processors.
struct TokenRules {
    bad_single: Vec<u32>,
    bad_multi: Vec<(Vec<u32>, u32)>,
    forced_bos: Option<u32>,
    forced_eos: Vec<u32>,
    suppress: Vec<u32>,
    eos_in_vocab: Vec<u32>,
}

/// A [`GenerateError::Config`] with message `m`.
fn config_err<T>(m: String) -> Result<T, GenerateError> {
    Err(GenerateError::Config(m))
}

/// `t` when it is inside the vocabulary, else an error naming it as `what`.
fn check_id(what: &str, t: u32, vocab_size: usize) -> Result<u32, GenerateError> {
    if (t as usize) < vocab_size {
        Ok(t)
    } else {
        Err(GenerateError::Config(format!(
            "{what} {t} is outside the vocabulary (size {vocab_size})"
        )))
    }
}

/// Concrete parameters of one `generate` call (see [`GenerationConfig::resolve`]).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub num_beams: usize,
    pub length_penalty: f64,
    pub early_stopping: EarlyStopping,
    /// Total decoder length limit, decoder start token included.
    pub max_length: usize,
    pub decoder_start: u32,
    /// Padding id for the encoder input (its value is masked out).
    pub pad: u32,
    pub eos: Vec<u32>,
    pub processors: super::processors::Processors,
}

fn read_json(path: &Path) -> Result<serde_json::Value, GenerateError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| GenerateError::Config(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| GenerateError::Config(format!("{} is not valid JSON: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generation_config_json_wins_over_config_json() {
        let gen = json!({"num_beams": 4, "max_length": 512, "eos_token_id": 0,
                         "decoder_start_token_id": 7, "bad_words_ids": [[7]],
                         "pad_token_id": 7, "forced_eos_token_id": 0});
        let config = json!({"num_beams": 6, "max_position_embeddings": 512,
                            "model_type": "marian", "decoder_start_token_id": 7});
        let cfg = GenerationConfig::from_json(Some(&gen), &config).unwrap();
        assert_eq!(cfg.num_beams, Some(4));
        let r = cfg.resolve(100).unwrap();
        assert_eq!(r.num_beams, 4);
        assert_eq!(r.max_length, 512);
        assert_eq!(r.decoder_start, 7);
        assert_eq!(r.eos, vec![0]);
        assert_eq!(r.processors.bad_single, vec![7]);
        assert_eq!(r.processors.forced_eos, vec![0]);
    }

    #[test]
    fn config_json_used_without_generation_config() {
        let config = json!({"num_beams": 6, "early_stopping": true, "length_penalty": 2,
                            "eos_token_id": [2, 3], "bos_token_id": 0, "min_length": 5});
        let cfg = GenerationConfig::from_json(None, &config).unwrap();
        let r = cfg.resolve(50).unwrap();
        assert_eq!(r.num_beams, 6);
        assert_eq!(r.early_stopping, EarlyStopping::True);
        assert_eq!(r.length_penalty, 2.0);
        assert_eq!(r.eos, vec![2, 3]);
        // No decoder_start_token_id: transformers falls back to bos_token_id.
        assert_eq!(r.decoder_start, 0);
        // No pad: transformers uses the first EOS.
        assert_eq!(r.pad, 2);
        // Default max length: 20 new tokens after the start token.
        assert_eq!(r.max_length, 21);
        assert_eq!(r.processors.min_length, 5);
    }

    #[test]
    fn new_token_limits_take_precedence_and_count_the_start_token() {
        let mut cfg = GenerationConfig {
            max_length: Some(200),
            min_length: Some(10),
            decoder_start_token_id: Some(0),
            eos_token_id: Some(TokenIds::One(1)),
            ..Default::default()
        };
        cfg.max_new_tokens = Some(30);
        cfg.min_new_tokens = Some(30);
        let r = cfg.resolve(10).unwrap();
        assert_eq!(r.max_length, 31);
        assert_eq!(r.processors.min_length, 31);
        assert_eq!(r.processors.min_new_tokens, 30);
        cfg.max_new_tokens = Some(0);
        assert!(cfg.resolve(10).is_err());
    }

    #[test]
    fn default_max_length_is_capped_by_positions() {
        let config = json!({"model_type": "marian", "max_position_embeddings": 8,
                            "decoder_start_token_id": 1});
        let mut cfg = GenerationConfig::from_json(Some(&json!({})), &config).unwrap();
        assert_eq!(cfg.resolve(10).unwrap().max_length, 8);
        // Explicit limits beyond the positions stop at the last position.
        cfg.max_length = Some(512);
        assert_eq!(cfg.resolve(10).unwrap().max_length, 9);
        cfg.max_new_tokens = Some(5);
        assert_eq!(cfg.resolve(10).unwrap().max_length, 6);
    }

    #[test]
    fn early_stopping_forms() {
        for (v, want) in [
            (json!(true), EarlyStopping::True),
            (json!(false), EarlyStopping::Heuristic),
            (json!("never"), EarlyStopping::Never),
        ] {
            let cfg: GenerationConfig =
                serde_json::from_value(json!({ "early_stopping": v })).unwrap();
            assert_eq!(cfg.early_stopping, Some(want));
        }
        assert!(
            serde_json::from_value::<GenerationConfig>(json!({"early_stopping": "sometimes"}))
                .is_err()
        );
    }

    #[test]
    fn rejects_bad_values() {
        let base = GenerationConfig {
            decoder_start_token_id: Some(0),
            ..Default::default()
        };
        let with = |f: &dyn Fn(&mut GenerationConfig)| {
            let mut c = base.clone();
            f(&mut c);
            c.resolve(10)
        };
        assert!(with(&|c| c.num_beams = Some(0)).is_err());
        assert!(with(&|c| c.repetition_penalty = Some(0.0)).is_err());
        assert!(with(&|c| c.bad_words_ids = Some(vec![vec![]])).is_err());
        assert!(with(&|c| c.bad_words_ids = Some(vec![vec![3, 12]])).is_err());
        assert!(with(&|c| c.forced_bos_token_id = Some(10)).is_err());
        assert!(with(&|c| c.num_beam_groups = Some(2)).is_err());
        assert!(with(&|c| c.decoder_start_token_id = None).is_err());
        assert!(with(&|c| c.num_beam_groups = Some(1)).is_ok());
        assert!(serde_json::from_value::<GenerationConfig>(json!({"num_beams": "four"})).is_err());
    }

    #[test]
    fn bad_words_split_and_eos_filtered() {
        let cfg = GenerationConfig {
            decoder_start_token_id: Some(0),
            eos_token_id: Some(TokenIds::One(2)),
            bad_words_ids: Some(vec![vec![2], vec![5], vec![5], vec![3, 4], vec![2, 6]]),
            ..Default::default()
        };
        let r = cfg.resolve(10).unwrap();
        assert_eq!(r.processors.bad_single, vec![5]);
        assert_eq!(r.processors.bad_multi, vec![(vec![3], 4), (vec![2], 6)]);
    }
}
