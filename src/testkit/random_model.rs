//! Random-weight seq2seq models of real shapes, written in the Hugging Face Hub layout
//! (`config.json`, `generation_config.json`, `model.safetensors`, tokenizer files).
//!
//! No machine here reaches the Hub, yet end-to-end tests, demos and benchmarks need models
//! with real file formats and real tensor names and shapes. This module writes them without
//! Python: the key sets of `config.json` / `generation_config.json` are those transformers
//! 5.x `save_pretrained` writes, and `model.safetensors` holds exactly the tensors of the HF
//! checkpoint (tied weights stored once, as `save_pretrained` does).
//!
//! Weights follow the `diversify` recipe of `shared/reference/make_random_models.py`: HF's
//! own init (std 0.02) makes a random model repeat one token forever, so embeddings are
//! larger, q/k projections moderately peaky, other projections small, and norm weights
//! uniform(0.5, 1.5). Standard deviations are given for d_model = 512 and scaled by
//! sqrt(512 / d_model), which keeps attention-logit and output-logit magnitudes roughly the
//! same at every width (a tiny model behaves like a big one).
//!
//! Every tensor's values depend only on (seed, tensor name, block index), so the file is
//! identical for a given seed whatever the thread count, and tensors are generated one at a
//! time while the file is written (peak memory: the largest tensor).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use safetensors::tensor::{Dtype, View};
use serde_json::{json, Map, Value};

use crate::model::{Arch, ModelError, Result};

/// transformers release whose `save_pretrained` output the JSON files reproduce.
pub const TRANSFORMERS_VERSION: &str = "5.24.0";

/// Tokenizer files copied by `--tokenizer` when present (never weights or model configs).
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "source.spm",
    "target.spm",
    "vocab.json",
    "target_vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    "merges.txt",
];

/// What the writer writes: an architecture ([`crate::model::Arch`]) and, for T5, which
/// flavour (v1.0 or v1.1). The `random-model --arch` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// `MarianMTModel`: post-LN, swish, sinusoidal positions, tied head, `final_logits_bias`.
    Marian,
    /// `BartForConditionalGeneration`: post-LN, gelu, learned positions (+2 offset).
    Bart,
    /// `MBartForConditionalGeneration`: pre-LN with final layer norms, scaled embeddings.
    Mbart,
    /// `T5ForConditionalGeneration` v1.0 (t5-small): relu, tied head.
    T5,
    /// T5 v1.1 / FLAN-T5: gated-gelu, untied `lm_head`.
    T5v11,
}

impl Variant {
    pub const ALL: [Variant; 5] = [
        Variant::Marian,
        Variant::Bart,
        Variant::Mbart,
        Variant::T5,
        Variant::T5v11,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Marian => "marian",
            Variant::Bart => "bart",
            Variant::Mbart => "mbart",
            Variant::T5 => "t5",
            Variant::T5v11 => "t5v11",
        }
    }

    pub fn parse(s: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|a| a.name() == s)
    }

    /// The architecture this variant is a model of.
    pub fn arch(self) -> Arch {
        match self {
            Variant::Marian => Arch::Marian,
            Variant::Bart => Arch::Bart,
            Variant::Mbart => Arch::MBart,
            Variant::T5 | Variant::T5v11 => Arch::T5,
        }
    }

    /// `model_type` in config.json.
    pub fn model_type(self) -> &'static str {
        self.arch().name()
    }

    fn class_name(self) -> &'static str {
        match self {
            Variant::Marian => "MarianMTModel",
            Variant::Bart => "BartForConditionalGeneration",
            Variant::Mbart => "MBartForConditionalGeneration",
            Variant::T5 | Variant::T5v11 => "T5ForConditionalGeneration",
        }
    }

    fn is_t5(self) -> bool {
        matches!(self, Variant::T5 | Variant::T5v11)
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Model size: `Tiny` (any arch, a few hundred KB, for tests) or the shape of a real model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    Tiny,
    /// Helsinki-NLP/opus-mt-vi-en (Marian, ~75M parameters).
    OpusMtViEn,
    /// sshleifer/distilbart-cnn-12-6 (BART, 12 encoder / 6 decoder layers).
    DistilbartCnn12_6,
    /// facebook/bart-large-cnn (BART, 12 + 12 layers).
    BartLargeCnn,
    /// google-t5/t5-small.
    T5Small,
    /// google/flan-t5-base.
    FlanT5Base,
}

impl Shape {
    pub const ALL: [Shape; 6] = [
        Shape::Tiny,
        Shape::OpusMtViEn,
        Shape::DistilbartCnn12_6,
        Shape::BartLargeCnn,
        Shape::T5Small,
        Shape::FlanT5Base,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Tiny => "tiny",
            Shape::OpusMtViEn => "opus-mt-vi-en",
            Shape::DistilbartCnn12_6 => "distilbart-cnn-12-6",
            Shape::BartLargeCnn => "bart-large-cnn",
            Shape::T5Small => "t5-small",
            Shape::FlanT5Base => "flan-t5-base",
        }
    }

    pub fn parse(s: &str) -> Option<Shape> {
        Shape::ALL.into_iter().find(|a| a.name() == s)
    }

    /// The architecture of a named shape; `None` for `Tiny` (which fits every arch).
    pub fn arch(self) -> Option<Variant> {
        match self {
            Shape::Tiny => None,
            Shape::OpusMtViEn => Some(Variant::Marian),
            Shape::DistilbartCnn12_6 | Shape::BartLargeCnn => Some(Variant::Bart),
            Shape::T5Small => Some(Variant::T5),
            Shape::FlanT5Base => Some(Variant::T5v11),
        }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct RandomSpec {
    pub arch: Variant,
    pub shape: Shape,
    /// Vocabulary size; default: the tokenizer's, else the shape's. With a tokenizer it may
    /// only grow the vocabulary (real checkpoints pad it, e.g. T5's 32100 -> 32128).
    pub vocab_size: Option<usize>,
    /// Directory whose tokenizer files are copied and whose `config.json` (or vocabulary)
    /// gives vocab_size and the special token ids.
    pub tokenizer: Option<PathBuf>,
    pub seed: u64,
}

impl RandomSpec {
    pub fn new(arch: Variant, shape: Shape) -> Self {
        RandomSpec {
            arch,
            shape,
            vocab_size: None,
            tokenizer: None,
            seed: 0,
        }
    }
}

/// Special token ids as they appear in config.json / generation_config.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialIds {
    pub pad: u32,
    pub eos: u32,
    pub bos: Option<u32>,
    pub decoder_start: u32,
    pub forced_bos: Option<u32>,
    pub forced_eos: Option<u32>,
}

/// Layer sizes of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Dims {
    pub d_model: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub heads: usize,
    pub ffn_dim: usize,
    /// T5: per-head width (`d_kv`); others: d_model / heads.
    pub d_kv: usize,
    pub vocab_size: usize,
    /// Marian/BART/mBART `max_position_embeddings`; unused by T5.
    pub max_positions: usize,
    /// `activation_function` (Marian/BART) or `feed_forward_proj` (T5).
    pub activation: &'static str,
    pub rel_buckets: usize,
    pub rel_max_distance: usize,
}

/// How one tensor is filled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// N(0, std); `zero_row` (a padding embedding) is all zeros.
    Normal {
        std: f32,
        zero_row: Option<usize>,
    },
    Uniform {
        lo: f32,
        hi: f32,
    },
    Zeros,
}

/// One tensor of the checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorPlan {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

impl TensorPlan {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Everything that will be written, resolved from a [`RandomSpec`].
#[derive(Debug, Clone)]
pub struct ModelPlan {
    pub arch: Variant,
    pub shape: Shape,
    pub dims: Dims,
    pub ids: SpecialIds,
    pub config: Value,
    pub generation_config: Value,
    /// In file order (sorted by name, as safetensors stores them).
    pub tensors: Vec<TensorPlan>,
    /// Tokenizer files to copy into the output directory.
    pub tokenizer_files: Vec<PathBuf>,
    pub seed: u64,
}

impl ModelPlan {
    pub fn num_parameters(&self) -> usize {
        self.tensors.iter().map(TensorPlan::numel).sum()
    }

    /// Size of model.safetensors minus its header.
    pub fn data_bytes(&self) -> usize {
        self.num_parameters() * 4
    }
}

/// Write a random model for `spec` into `out` (created if missing; files of the same names
/// are replaced, others are left alone).
pub fn write_random_model(spec: &RandomSpec, out: &Path) -> Result<()> {
    plan(spec)?.write(out)
}

fn err(msg: impl Into<String>) -> ModelError {
    ModelError::Config(msg.into())
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> ModelError {
    err(format!("cannot {what} {}: {e}", path.display()))
}

/// Resolve a spec into dims, special ids, JSON files and the tensor list (reads the tokenizer
/// directory, writes nothing).
pub fn plan(spec: &RandomSpec) -> Result<ModelPlan> {
    let arch = spec.arch;
    if let Some(a) = spec.shape.arch() {
        if a != arch {
            return Err(err(format!(
                "shape {} is a {} model, not {}",
                spec.shape, a, arch
            )));
        }
    }
    let mut dims = shape_dims(arch, spec.shape);
    let tok = match &spec.tokenizer {
        Some(dir) => Some(read_tokenizer_dir(dir, arch)?),
        None => None,
    };
    dims.vocab_size = match (&tok, spec.vocab_size) {
        (Some(t), Some(v)) if v < t.vocab_size => {
            return Err(err(format!(
                "--vocab-size {v} is smaller than the vocabulary of tokenizer {} ({}): ids \
                 would fall outside the embedding",
                t.dir.display(),
                t.vocab_size
            )))
        }
        (_, Some(v)) => v,
        (Some(t), None) => t.vocab_size,
        (None, None) => dims.vocab_size,
    };
    let v = dims.vocab_size;
    if v < 8 {
        return Err(err(format!(
            "vocab size {v} is too small (need at least 8)"
        )));
    }
    let mut ids = default_ids(arch, v);
    if let Some(t) = &tok {
        t.overrides.apply(&mut ids, arch);
    }
    for (what, id) in [
        ("pad", Some(ids.pad)),
        ("eos", Some(ids.eos)),
        ("bos", ids.bos),
        ("decoder_start", Some(ids.decoder_start)),
        ("forced_bos", ids.forced_bos),
        ("forced_eos", ids.forced_eos),
    ] {
        if let Some(id) = id {
            if id as usize >= v {
                return Err(err(format!(
                    "{what} token id {id} is outside the vocabulary (size {v})"
                )));
            }
        }
    }
    let config = config_json(arch, spec.shape, &dims, &ids);
    let generation_config = generation_config_json(arch, spec.shape, &ids);
    let mut tensors = tensor_plan(arch, &dims, &ids);
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ModelPlan {
        arch,
        shape: spec.shape,
        dims,
        ids,
        config,
        generation_config,
        tensors,
        tokenizer_files: tok.map(|t| t.files).unwrap_or_default(),
        seed: spec.seed,
    })
}

fn shape_dims(arch: Variant, shape: Shape) -> Dims {
    let tiny = Dims {
        d_model: 32,
        encoder_layers: 2,
        decoder_layers: 2,
        heads: 4,
        ffn_dim: 64,
        d_kv: 8,
        vocab_size: 1000,
        max_positions: if arch == Variant::Marian { 512 } else { 256 },
        activation: match arch {
            Variant::Marian => "swish",
            Variant::Bart | Variant::Mbart => "gelu",
            Variant::T5 => "relu",
            Variant::T5v11 => "gated-gelu",
        },
        rel_buckets: 32,
        rel_max_distance: 128,
    };
    match shape {
        Shape::Tiny => tiny,
        Shape::OpusMtViEn => Dims {
            d_model: 512,
            encoder_layers: 6,
            decoder_layers: 6,
            heads: 8,
            ffn_dim: 2048,
            d_kv: 64,
            // Helsinki-NLP/opus-mt-vi-en config.json: "vocab_size": 53739 (<pad> = 53738,
            // the last id); the reference harness's 53685 is opus-mt-en-vi's.
            vocab_size: 53739,
            max_positions: 512,
            ..tiny
        },
        Shape::DistilbartCnn12_6 | Shape::BartLargeCnn => Dims {
            d_model: 1024,
            encoder_layers: 12,
            decoder_layers: if shape == Shape::BartLargeCnn { 12 } else { 6 },
            heads: 16,
            ffn_dim: 4096,
            d_kv: 64,
            vocab_size: 50264,
            max_positions: 1024,
            ..tiny
        },
        Shape::T5Small => Dims {
            d_model: 512,
            encoder_layers: 6,
            decoder_layers: 6,
            heads: 8,
            ffn_dim: 2048,
            d_kv: 64,
            vocab_size: 32128,
            max_positions: 512,
            ..tiny
        },
        Shape::FlanT5Base => Dims {
            d_model: 768,
            encoder_layers: 12,
            decoder_layers: 12,
            heads: 12,
            ffn_dim: 2048,
            d_kv: 64,
            vocab_size: 32128,
            max_positions: 512,
            ..tiny
        },
    }
}

/// The special ids of the real models of each family, for a vocabulary of size `v`.
fn default_ids(arch: Variant, v: usize) -> SpecialIds {
    let last = (v - 1) as u32;
    match arch {
        // opus-mt: <pad> is the last id and starts decoding; </s> = 0.
        Variant::Marian => SpecialIds {
            pad: last,
            eos: 0,
            bos: Some(0),
            decoder_start: last,
            forced_bos: None,
            forced_eos: Some(0),
        },
        Variant::Bart => SpecialIds {
            pad: 1,
            eos: 2,
            bos: Some(0),
            decoder_start: 2,
            forced_bos: Some(0),
            forced_eos: Some(2),
        },
        // Language codes sit at the end of an mBART vocabulary; decoding starts from the
        // target one (vinai-translate style), here the last id.
        Variant::Mbart => SpecialIds {
            pad: 1,
            eos: 2,
            bos: Some(0),
            decoder_start: last,
            forced_bos: None,
            forced_eos: Some(2),
        },
        Variant::T5 | Variant::T5v11 => SpecialIds {
            pad: 0,
            eos: 1,
            bos: None,
            decoder_start: 0,
            forced_bos: None,
            forced_eos: None,
        },
    }
}

// ------------------------------------------------------------------------------ tokenizer

/// Ids found in a tokenizer directory; `Some(None)` = explicitly null in its config.json.
#[derive(Debug, Default)]
struct IdOverrides {
    pad: Option<u32>,
    eos: Option<u32>,
    bos: Option<Option<u32>>,
    decoder_start: Option<u32>,
    forced_bos: Option<Option<u32>>,
    forced_eos: Option<Option<u32>>,
}

impl IdOverrides {
    fn apply(&self, ids: &mut SpecialIds, arch: Variant) {
        if let Some(p) = self.pad {
            ids.pad = p;
        }
        if let Some(e) = self.eos {
            ids.eos = e;
        }
        if let Some(b) = self.bos {
            ids.bos = b;
        }
        if let Some(d) = self.decoder_start {
            ids.decoder_start = d;
        }
        if let Some(f) = self.forced_bos {
            ids.forced_bos = f;
        }
        if let Some(f) = self.forced_eos {
            ids.forced_eos = f;
        }
        // Without an explicit decoder start, the family's rule applies to the new ids:
        // Marian and T5 start from <pad>, BART from </s>.
        if self.decoder_start.is_none() {
            match arch {
                Variant::Marian | Variant::T5 | Variant::T5v11 => ids.decoder_start = ids.pad,
                Variant::Bart => ids.decoder_start = ids.eos,
                Variant::Mbart => {}
            }
        }
    }
}

#[derive(Debug)]
struct TokenizerDir {
    dir: PathBuf,
    vocab_size: usize,
    overrides: IdOverrides,
    files: Vec<PathBuf>,
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).map_err(|e| io_err("read", path, e))?;
    serde_json::from_str(&text).map_err(|e| err(format!("{}: invalid JSON: {e}", path.display())))
}

/// A token id field of a config.json: absent -> None, null -> Some(None).
fn id_field(cfg: &Value, key: &str, path: &Path) -> Result<Option<Option<u32>>> {
    match cfg.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => match v.as_u64().and_then(|x| u32::try_from(x).ok()) {
            Some(x) => Ok(Some(Some(x))),
            None => Err(err(format!(
                "{}: {key} must be a token id, found {v}",
                path.display()
            ))),
        },
    }
}

fn required_id(cfg: &Value, key: &str, path: &Path) -> Result<Option<u32>> {
    match id_field(cfg, key, path)? {
        Some(None) => Err(err(format!("{}: {key} is null", path.display()))),
        Some(Some(x)) => Ok(Some(x)),
        None => Ok(None),
    }
}

fn read_tokenizer_dir(dir: &Path, arch: Variant) -> Result<TokenizerDir> {
    if !dir.is_dir() {
        return Err(err(format!(
            "tokenizer directory {} does not exist",
            dir.display()
        )));
    }
    let files: Vec<PathBuf> = TOKENIZER_FILES
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .collect();
    if files.is_empty() {
        return Err(err(format!(
            "no tokenizer files in {} (looked for {})",
            dir.display(),
            TOKENIZER_FILES.join(", ")
        )));
    }
    let cfg_path = dir.join("config.json");
    if cfg_path.is_file() {
        let cfg = read_json(&cfg_path)?;
        if let Some(mt) = cfg.get("model_type").and_then(Value::as_str) {
            if mt != arch.model_type() {
                return Err(err(format!(
                    "{}: model_type {mt:?} does not match --arch {arch} (model_type {:?})",
                    cfg_path.display(),
                    arch.model_type()
                )));
            }
        }
        let vocab_size = cfg
            .get("vocab_size")
            .and_then(Value::as_u64)
            .ok_or_else(|| err(format!("{}: no integer vocab_size", cfg_path.display())))?
            as usize;
        if let Some(dv) = cfg.get("decoder_vocab_size").and_then(Value::as_u64) {
            if dv as usize != vocab_size {
                return Err(err(format!(
                    "{}: decoder_vocab_size {dv} != vocab_size {vocab_size} (separate \
                     target vocabularies are not supported)",
                    cfg_path.display()
                )));
            }
        }
        let overrides = IdOverrides {
            pad: required_id(&cfg, "pad_token_id", &cfg_path)?,
            eos: required_id(&cfg, "eos_token_id", &cfg_path)?,
            bos: id_field(&cfg, "bos_token_id", &cfg_path)?,
            decoder_start: required_id(&cfg, "decoder_start_token_id", &cfg_path)?,
            forced_bos: id_field(&cfg, "forced_bos_token_id", &cfg_path)?,
            forced_eos: id_field(&cfg, "forced_eos_token_id", &cfg_path)?,
        };
        return Ok(TokenizerDir {
            dir: dir.to_path_buf(),
            vocab_size,
            overrides,
            files,
        });
    }
    // No config.json: size the vocabulary from a token -> id map.
    let vocab = if dir.join("tokenizer.json").is_file() {
        tokenizer_json_vocab(&dir.join("tokenizer.json"))?
    } else if dir.join("vocab.json").is_file() {
        let p = dir.join("vocab.json");
        token_map(&read_json(&p)?, &p)?
    } else {
        return Err(err(format!(
            "{} has no config.json, tokenizer.json or vocab.json to take the vocabulary size \
             and special ids from; add a config.json or pass --vocab-size with a tokenizer.json",
            dir.display()
        )));
    };
    let vocab_size = vocab.values().max().map(|m| *m as usize + 1).unwrap_or(0);
    let find = |t: &str| vocab.get(t).copied();
    let mut overrides = IdOverrides {
        pad: find("<pad>"),
        eos: find("</s>"),
        ..Default::default()
    };
    if let Some(b) = find("<s>") {
        overrides.bos = Some(Some(b));
    }
    match arch {
        Variant::Marian | Variant::Mbart => overrides.forced_eos = overrides.eos.map(Some),
        Variant::Bart => {
            overrides.forced_bos = overrides.bos;
            overrides.forced_eos = overrides.eos.map(Some);
        }
        Variant::T5 | Variant::T5v11 => {}
    }
    Ok(TokenizerDir {
        dir: dir.to_path_buf(),
        vocab_size,
        overrides,
        files,
    })
}

fn token_map(v: &Value, path: &Path) -> Result<HashMap<String, u32>> {
    let obj = v
        .as_object()
        .ok_or_else(|| err(format!("{}: expected a token -> id object", path.display())))?;
    let mut out = HashMap::with_capacity(obj.len());
    for (k, id) in obj {
        let id = id
            .as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| err(format!("{}: bad id for token {k:?}", path.display())))?;
        out.insert(k.clone(), id);
    }
    Ok(out)
}

/// Token -> id of a tokenizer.json: the model vocabulary (object for BPE/WordLevel/WordPiece,
/// `[piece, score]` list for Unigram) plus added tokens.
fn tokenizer_json_vocab(path: &Path) -> Result<HashMap<String, u32>> {
    let tj = read_json(path)?;
    let mut out = match tj.pointer("/model/vocab") {
        Some(Value::Array(pieces)) => {
            let mut m = HashMap::with_capacity(pieces.len());
            for (i, p) in pieces.iter().enumerate() {
                if let Some(s) = p.get(0).and_then(Value::as_str) {
                    m.insert(s.to_string(), i as u32);
                }
            }
            m
        }
        Some(v @ Value::Object(_)) => token_map(v, path)?,
        _ => return Err(err(format!("{}: no model.vocab", path.display()))),
    };
    if let Some(Value::Array(added)) = tj.get("added_tokens") {
        for a in added {
            if let (Some(id), Some(c)) = (
                a.get("id").and_then(Value::as_u64),
                a.get("content").and_then(Value::as_str),
            ) {
                let id = u32::try_from(id)
                    .map_err(|_| err(format!("{}: added token id {id}", path.display())))?;
                out.insert(c.to_string(), id);
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------- JSON

/// Build a JSON object with keys in sorted order, as transformers writes them.
fn sorted(entries: Vec<(&str, Value)>) -> Value {
    let m: BTreeMap<&str, Value> = entries.into_iter().collect();
    let mut out = Map::new();
    for (k, v) in m {
        out.insert(k.to_string(), v);
    }
    Value::Object(out)
}

fn opt(id: Option<u32>) -> Value {
    id.map_or(Value::Null, |x| json!(x))
}

fn config_json(arch: Variant, shape: Shape, d: &Dims, ids: &SpecialIds) -> Value {
    let mut e: Vec<(&str, Value)> = vec![
        ("architectures", json!([arch.class_name()])),
        ("dtype", json!("float32")),
        ("eos_token_id", json!(ids.eos)),
        ("is_decoder", json!(false)),
        ("is_encoder_decoder", json!(true)),
        ("model_type", json!(arch.model_type())),
        ("pad_token_id", json!(ids.pad)),
        ("transformers_version", json!(TRANSFORMERS_VERSION)),
        ("use_cache", json!(true)),
        ("vocab_size", json!(d.vocab_size)),
        ("decoder_start_token_id", json!(ids.decoder_start)),
    ];
    if arch.is_t5() {
        let gated = d.activation.starts_with("gated-");
        let act = d.activation.trim_start_matches("gated-");
        // transformers maps gated-gelu to the tanh approximation.
        let dense_act = if d.activation == "gated-gelu" {
            "gelu_new"
        } else {
            act
        };
        e.extend([
            ("classifier_dropout", json!(0.0)),
            ("d_ff", json!(d.ffn_dim)),
            ("d_kv", json!(d.d_kv)),
            ("d_model", json!(d.d_model)),
            ("dense_act_fn", json!(dense_act)),
            ("dropout_rate", json!(0.1)),
            ("feed_forward_proj", json!(d.activation)),
            ("initializer_factor", json!(1.0)),
            ("is_gated_act", json!(gated)),
            ("layer_norm_epsilon", json!(1e-6)),
            ("num_decoder_layers", json!(d.decoder_layers)),
            ("num_heads", json!(d.heads)),
            ("num_layers", json!(d.encoder_layers)),
            ("relative_attention_max_distance", json!(d.rel_max_distance)),
            ("relative_attention_num_buckets", json!(d.rel_buckets)),
        ]);
        if arch == Variant::T5 {
            e.push(("tie_word_embeddings", json!(true)));
            e.push(("scale_decoder_outputs", json!(true)));
        } else {
            // The Hub files of v1.1/FLAN say "tie_word_embeddings": false (transformers 5
            // derives scale_decoder_outputs = false from it and keeps lm_head separate);
            // transformers 5 itself would write tie_word_embeddings true, which other
            // loaders read as a tied head.
            e.push(("tie_word_embeddings", json!(false)));
        }
        if shape != Shape::Tiny {
            e.push(("n_positions", json!(512)));
            e.push(("task_specific_params", t5_task_params()));
        }
    } else {
        e.extend([
            ("activation_dropout", json!(0.0)),
            ("activation_function", json!(d.activation)),
            ("attention_dropout", json!(0.0)),
            ("bos_token_id", opt(ids.bos)),
            ("d_model", json!(d.d_model)),
            ("decoder_attention_heads", json!(d.heads)),
            ("decoder_ffn_dim", json!(d.ffn_dim)),
            ("decoder_layerdrop", json!(0.0)),
            ("decoder_layers", json!(d.decoder_layers)),
            ("dropout", json!(0.1)),
            ("encoder_attention_heads", json!(d.heads)),
            ("encoder_ffn_dim", json!(d.ffn_dim)),
            ("encoder_layerdrop", json!(0.0)),
            ("encoder_layers", json!(d.encoder_layers)),
            ("forced_eos_token_id", opt(ids.forced_eos)),
            ("init_std", json!(0.02)),
            ("max_position_embeddings", json!(d.max_positions)),
            ("scale_embedding", json!(arch != Variant::Bart)),
            ("tie_word_embeddings", json!(true)),
        ]);
        match arch {
            Variant::Marian => {
                e.push(("decoder_vocab_size", json!(d.vocab_size)));
                e.push(("share_encoder_decoder_embeddings", json!(true)));
            }
            Variant::Bart => {
                e.push(("classifier_dropout", json!(0.0)));
                e.push((
                    "id2label",
                    json!({"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}),
                ));
                e.push((
                    "label2id",
                    json!({"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2}),
                ));
            }
            _ => e.push(("classifier_dropout", json!(0.0))),
        }
    }
    sorted(e)
}

/// `task_specific_params` of the t5-small / flan-t5-base Hub configs (the pipelines' prefixes).
fn t5_task_params() -> Value {
    let tr = |lang: &str| {
        json!({"early_stopping": true, "max_length": 300, "num_beams": 4,
               "prefix": format!("translate English to {lang}: ")})
    };
    json!({
        "summarization": {"early_stopping": true, "length_penalty": 2.0, "max_length": 200,
                          "min_length": 30, "no_repeat_ngram_size": 3, "num_beams": 4,
                          "prefix": "summarize: "},
        "translation_en_to_de": tr("German"),
        "translation_en_to_fr": tr("French"),
        "translation_en_to_ro": tr("Romanian"),
    })
}

fn generation_config_json(arch: Variant, _shape: Shape, ids: &SpecialIds) -> Value {
    let mut e: Vec<(&str, Value)> = vec![
        ("_from_model_config", json!(true)),
        ("decoder_start_token_id", json!(ids.decoder_start)),
        ("eos_token_id", json!(ids.eos)),
        ("output_attentions", json!(false)),
        ("output_hidden_states", json!(false)),
        ("pad_token_id", json!(ids.pad)),
        ("transformers_version", json!(TRANSFORMERS_VERSION)),
        ("use_cache", json!(true)),
    ];
    if let Some(b) = ids.bos {
        e.push(("bos_token_id", json!(b)));
    }
    if let Some(f) = ids.forced_eos {
        e.push(("forced_eos_token_id", json!(f)));
    }
    match arch {
        // Helsinki-NLP/opus-mt-*: never emit <pad>.
        Variant::Marian => e.extend([
            ("bad_words_ids", json!([[ids.pad]])),
            ("max_length", json!(512)),
            ("num_beams", json!(4)),
        ]),
        // facebook/bart-large-cnn and sshleifer/distilbart-cnn-12-6.
        Variant::Bart => {
            e.extend([
                ("early_stopping", json!(true)),
                ("length_penalty", json!(2.0)),
                ("max_length", json!(142)),
                ("min_length", json!(56)),
                ("no_repeat_ngram_size", json!(3)),
                ("num_beams", json!(4)),
            ]);
            if let Some(f) = ids.forced_bos {
                e.push(("forced_bos_token_id", json!(f)));
            }
        }
        // facebook/mbart-large-50-many-to-many-mmt.
        Variant::Mbart => {
            e.extend([
                ("early_stopping", json!(true)),
                ("max_length", json!(200)),
                ("num_beams", json!(5)),
            ]);
            if let Some(f) = ids.forced_bos {
                e.push(("forced_bos_token_id", json!(f)));
            }
        }
        // t5-small / flan-t5-base: only the special ids.
        Variant::T5 | Variant::T5v11 => {}
    }
    sorted(e)
}

// ------------------------------------------------------------------------------- tensors

/// Standard deviations at d_model = 512 (scaled by sqrt(512 / d_model), except T5's
/// embeddings and relative biases whose effect does not depend on the width).
///
/// Started from diversify() in shared/reference/make_random_models.py, then tuned with
/// scripts/check_random_model.py at the tiny and the real shapes: a small token embedding
/// (relative to positions and layer outputs) weakens the "repeat the input token" attractor
/// of tied heads; stronger FFNs (Marian, mBART) and relative biases (T5) make the output
/// depend on position and source; q/k stay small enough that float32 and float64 agree
/// (teacher-forced log-probs within ~1e-4), so ports can be checked for parity.
struct InitStd {
    emb: f32,
    /// Learned position embeddings (BART, mBART).
    pos: f32,
    /// q and k projections of every attention.
    qk: f32,
    /// v and output projections of self-attention.
    attn: f32,
    /// v and output projections of cross-attention.
    cross: f32,
    /// Feed-forward weights.
    ffn: f32,
}

fn init_std(arch: Variant) -> InitStd {
    match arch {
        Variant::Marian => InitStd {
            emb: 0.05,
            pos: 0.0,
            qk: 0.1,
            attn: 0.03,
            cross: 0.03,
            ffn: 0.075,
        },
        Variant::Bart => InitStd {
            emb: 0.06,
            pos: 0.3,
            qk: 0.08,
            attn: 0.015,
            cross: 0.03,
            ffn: 0.03,
        },
        Variant::Mbart => InitStd {
            emb: 0.03,
            pos: 0.3,
            qk: 0.08,
            attn: 0.06,
            cross: 0.03,
            ffn: 0.09,
        },
        // T5 has no 1/sqrt(d_kv) attention scaling, hence the smaller q/k (for d_kv = 64;
        // see tensor_plan for other widths).
        Variant::T5 | Variant::T5v11 => InitStd {
            emb: 1.0,
            pos: 0.0,
            qk: 0.025,
            attn: 0.2,
            cross: 0.2,
            ffn: if arch == Variant::T5 { 0.05 } else { 0.2 },
        },
    }
}

const BIAS_STD: f32 = 0.02;
const NORM_BIAS_STD: f32 = 0.1;
const REL_BIAS_STD: f32 = 8.0;
const NORM_WEIGHT: Init = Init::Uniform { lo: 0.5, hi: 1.5 };

struct Builder<'a> {
    out: Vec<TensorPlan>,
    d: &'a Dims,
    qk: f32,
    attn: f32,
    cross: f32,
    ffn: f32,
}

impl Builder<'_> {
    fn push(&mut self, name: String, shape: Vec<usize>, init: Init) {
        self.out.push(TensorPlan { name, shape, init });
    }

    fn normal(std: f32) -> Init {
        Init::Normal {
            std,
            zero_row: None,
        }
    }

    /// nn.Linear(inp -> outp): weight [outp, inp] (+ bias [outp]).
    fn linear(&mut self, p: &str, inp: usize, outp: usize, std: f32, bias: bool) {
        self.push(format!("{p}.weight"), vec![outp, inp], Self::normal(std));
        if bias {
            self.push(format!("{p}.bias"), vec![outp], Self::normal(BIAS_STD));
        }
    }

    fn layer_norm(&mut self, p: &str) {
        let d = self.d.d_model;
        self.push(format!("{p}.weight"), vec![d], NORM_WEIGHT);
        self.push(format!("{p}.bias"), vec![d], Self::normal(NORM_BIAS_STD));
    }

    /// BART-family attention block `p` (q/k/v/out_proj with biases).
    fn bart_attention(&mut self, p: &str, cross: bool) {
        let d = self.d.d_model;
        let (qk, lin) = (self.qk, if cross { self.cross } else { self.attn });
        self.linear(&format!("{p}.q_proj"), d, d, qk, true);
        self.linear(&format!("{p}.k_proj"), d, d, qk, true);
        self.linear(&format!("{p}.v_proj"), d, d, lin, true);
        self.linear(&format!("{p}.out_proj"), d, d, lin, true);
    }

    fn bart_ffn(&mut self, p: &str) {
        let (d, f, lin) = (self.d.d_model, self.d.ffn_dim, self.ffn);
        self.linear(&format!("{p}.fc1"), d, f, lin, true);
        self.linear(&format!("{p}.fc2"), f, d, lin, true);
        self.layer_norm(&format!("{p}.final_layer_norm"));
    }

    /// T5 attention `p` (q/k/v/o, no biases; inner width heads * d_kv).
    fn t5_attention(&mut self, p: &str, relative_bias: bool, cross: bool) {
        let (d, inner) = (self.d.d_model, self.d.heads * self.d.d_kv);
        let (qk, lin) = (self.qk, if cross { self.cross } else { self.attn });
        self.linear(&format!("{p}.q"), d, inner, qk, false);
        self.linear(&format!("{p}.k"), d, inner, qk, false);
        self.linear(&format!("{p}.v"), d, inner, lin, false);
        self.linear(&format!("{p}.o"), inner, d, lin, false);
        if relative_bias {
            self.push(
                format!("{p}.relative_attention_bias.weight"),
                vec![self.d.rel_buckets, self.d.heads],
                Self::normal(REL_BIAS_STD),
            );
        }
    }

    fn t5_ffn(&mut self, p: &str, gated: bool) {
        let (d, f, lin) = (self.d.d_model, self.d.ffn_dim, self.ffn);
        if gated {
            self.linear(&format!("{p}.DenseReluDense.wi_0"), d, f, lin, false);
            self.linear(&format!("{p}.DenseReluDense.wi_1"), d, f, lin, false);
        } else {
            self.linear(&format!("{p}.DenseReluDense.wi"), d, f, lin, false);
        }
        self.linear(&format!("{p}.DenseReluDense.wo"), f, d, lin, false);
        self.rms_norm(&format!("{p}.layer_norm"));
    }

    fn rms_norm(&mut self, p: &str) {
        self.push(format!("{p}.weight"), vec![self.d.d_model], NORM_WEIGHT);
    }
}

/// The tensors of the HF checkpoint, with their init.
pub fn tensor_plan(arch: Variant, d: &Dims, ids: &SpecialIds) -> Vec<TensorPlan> {
    let s = init_std(arch);
    // Same attention/logit magnitudes at every width (see the module docs).
    let scale = (512.0 / d.d_model as f32).sqrt();
    // T5's unscaled attention logits grow like sqrt(d_kv) * d_model * std^2: keep them at
    // their d_kv = 64 size.
    let qk_scale = if arch.is_t5() {
        scale * (64.0 / d.d_kv as f32).powf(0.25)
    } else {
        scale
    };
    let mut b = Builder {
        out: Vec::new(),
        d,
        qk: s.qk * qk_scale,
        attn: s.attn * scale,
        cross: s.cross * scale,
        ffn: s.ffn * scale,
    };
    let (v, dm) = (d.vocab_size, d.d_model);
    if arch.is_t5() {
        // T5 embeddings enter an RMS norm and the (tied) head is scaled by d^-0.5, so their
        // std does not depend on the width.
        b.push("shared.weight".into(), vec![v, dm], Builder::normal(s.emb));
        let gated = arch == Variant::T5v11;
        for i in 0..d.encoder_layers {
            let p = format!("encoder.block.{i}.layer");
            b.t5_attention(&format!("{p}.0.SelfAttention"), i == 0, false);
            b.rms_norm(&format!("{p}.0.layer_norm"));
            b.t5_ffn(&format!("{p}.1"), gated);
        }
        b.rms_norm("encoder.final_layer_norm");
        for i in 0..d.decoder_layers {
            let p = format!("decoder.block.{i}.layer");
            b.t5_attention(&format!("{p}.0.SelfAttention"), i == 0, false);
            b.rms_norm(&format!("{p}.0.layer_norm"));
            b.t5_attention(&format!("{p}.1.EncDecAttention"), false, true);
            b.rms_norm(&format!("{p}.1.layer_norm"));
            b.t5_ffn(&format!("{p}.2"), gated);
        }
        b.rms_norm("decoder.final_layer_norm");
        if gated {
            // Untied head, unscaled decoder output: logits std ~ 1 like the tied v1.0 head.
            b.push(
                "lm_head.weight".into(),
                vec![v, dm],
                Builder::normal(1.0 / (dm as f32).sqrt()),
            );
        }
        return b.out;
    }
    let emb_std = s.emb * scale;
    b.push("final_logits_bias".into(), vec![1, v], Init::Zeros);
    b.push(
        "model.shared.weight".into(),
        vec![v, dm],
        Init::Normal {
            std: emb_std,
            zero_row: Some(ids.pad as usize),
        },
    );
    for side in ["encoder", "decoder"] {
        let p = format!("model.{side}");
        if arch != Variant::Marian {
            // Learned positions, offset by 2 (fairseq legacy); Marian's are sinusoidal and
            // not saved.
            b.push(
                format!("{p}.embed_positions.weight"),
                vec![d.max_positions + 2, dm],
                Builder::normal(s.pos * scale),
            );
            b.layer_norm(&format!("{p}.layernorm_embedding"));
        }
        if arch == Variant::Mbart {
            b.layer_norm(&format!("{p}.layer_norm"));
        }
        let n = if side == "encoder" {
            d.encoder_layers
        } else {
            d.decoder_layers
        };
        for i in 0..n {
            let l = format!("{p}.layers.{i}");
            b.bart_attention(&format!("{l}.self_attn"), false);
            b.layer_norm(&format!("{l}.self_attn_layer_norm"));
            if side == "decoder" {
                b.bart_attention(&format!("{l}.encoder_attn"), true);
                b.layer_norm(&format!("{l}.encoder_attn_layer_norm"));
            }
            b.bart_ffn(&l);
        }
    }
    b.out
}

// ------------------------------------------------------------------------- random numbers

/// SplitMix64: tiny, fast, good enough statistically for weights, and trivially seekable
/// (one independent stream per block).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Two independent N(0, 1) samples (Box-Muller).
    pub fn normal_pair(&mut self) -> (f64, f64) {
        let u1 = 1.0 - self.next_f64(); // (0, 1]: ln is finite
        let u2 = self.next_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        (r * c, r * s)
    }
}

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Stream id of a tensor: seed and name, so values do not depend on the tensor order.
fn tensor_stream(seed: u64, name: &str) -> u64 {
    // FNV-1a over the name, then mixed with the seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3);
    }
    mix64(h ^ mix64(seed.wrapping_add(0x5851_F42D_4C95_7F2D)))
}

/// Elements per independently seeded block (parallel and order-independent generation).
const BLOCK: usize = 1 << 16;

/// Little-endian f32 bytes of one tensor.
pub fn tensor_bytes(t: &TensorPlan, seed: u64) -> Vec<u8> {
    let n = t.numel();
    let mut bytes = vec![0u8; n * 4];
    let stream = tensor_stream(seed, &t.name);
    let row = t.shape.last().copied().unwrap_or(1).max(1);
    bytes
        .par_chunks_mut(BLOCK * 4)
        .enumerate()
        .for_each(|(bi, chunk)| {
            let mut rng = SplitMix64::new(mix64(
                stream ^ (bi as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93),
            ));
            let start = bi * BLOCK;
            let mut spare: Option<f64> = None;
            for (j, out) in chunk.chunks_exact_mut(4).enumerate() {
                let x = match t.init {
                    Init::Zeros => 0.0,
                    Init::Uniform { lo, hi } => lo + (hi - lo) * rng.next_f64() as f32,
                    Init::Normal { std, zero_row } => {
                        let z = match spare.take() {
                            Some(z) => z,
                            None => {
                                let (a, b) = rng.normal_pair();
                                spare = Some(b);
                                a
                            }
                        };
                        if zero_row == Some((start + j) / row) {
                            0.0
                        } else {
                            std * z as f32
                        }
                    }
                };
                out.copy_from_slice(&x.to_le_bytes());
            }
        });
    bytes
}

/// A tensor generated when the safetensors writer asks for its bytes.
struct LazyTensor<'a> {
    plan: &'a TensorPlan,
    seed: u64,
}

impl View for LazyTensor<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.plan.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(tensor_bytes(self.plan, self.seed))
    }
    fn data_len(&self) -> usize {
        self.plan.numel() * 4
    }
}

// -------------------------------------------------------------------------------- writing

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let mut s = serde_json::to_string_pretty(v)
        .map_err(|e| err(format!("{}: cannot serialize: {e}", path.display())))?;
    s.push('\n');
    fs::write(path, s).map_err(|e| io_err("write", path, e))
}

impl ModelPlan {
    /// Write all files into `out`. model.safetensors is written under a temporary name and
    /// renamed, so a failed run never leaves a truncated checkpoint behind.
    pub fn write(&self, out: &Path) -> Result<()> {
        fs::create_dir_all(out).map_err(|e| io_err("create directory", out, e))?;
        write_json(&out.join("config.json"), &self.config)?;
        write_json(&out.join("generation_config.json"), &self.generation_config)?;
        for src in &self.tokenizer_files {
            let Some(name) = src.file_name() else {
                continue;
            };
            let dst = out.join(name);
            fs::copy(src, &dst).map_err(|e| {
                err(format!(
                    "cannot copy {} to {}: {e}",
                    src.display(),
                    dst.display()
                ))
            })?;
        }
        let final_path = out.join("model.safetensors");
        let tmp = out.join("model.safetensors.partial");
        let views = self.tensors.iter().map(|t| {
            (
                t.name.clone(),
                LazyTensor {
                    plan: t,
                    seed: self.seed,
                },
            )
        });
        let meta = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
        if let Err(e) = safetensors::serialize_to_file(views, meta, &tmp) {
            let _ = fs::remove_file(&tmp);
            return Err(err(format!("cannot write {}: {e}", tmp.display())));
        }
        fs::rename(&tmp, &final_path).map_err(|e| io_err("rename to", &final_path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(arch: Variant) -> ModelPlan {
        plan(&RandomSpec::new(arch, Shape::Tiny)).unwrap()
    }

    #[test]
    fn normal_samples_have_the_requested_moments() {
        let t = TensorPlan {
            name: "x".into(),
            shape: vec![200, 1000],
            init: Init::Normal {
                std: 0.5,
                zero_row: Some(3),
            },
        };
        let b = tensor_bytes(&t, 7);
        let xs: Vec<f32> = b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert!(xs[3000..4000].iter().all(|&x| x == 0.0), "padding row");
        assert!(xs[4000..5000].iter().all(|&x| x != 0.0));
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.005, "mean {mean}");
        assert!((var.sqrt() - 0.5).abs() < 0.005, "std {}", var.sqrt());
    }

    #[test]
    fn uniform_stays_in_range_and_covers_it() {
        let t = TensorPlan {
            name: "ln".into(),
            shape: vec![10_000],
            init: NORM_WEIGHT,
        };
        let xs: Vec<f32> = tensor_bytes(&t, 1)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert!(xs.iter().all(|&x| (0.5..1.5).contains(&x)));
        let lo = xs.iter().cloned().fold(f32::MAX, f32::min);
        let hi = xs.iter().cloned().fold(f32::MIN, f32::max);
        assert!(lo < 0.51 && hi > 1.49, "{lo} {hi}");
    }

    #[test]
    fn values_depend_on_seed_and_name_only() {
        let mk = |name: &str| TensorPlan {
            name: name.into(),
            shape: vec![3 * BLOCK + 5],
            init: Builder::normal(1.0),
        };
        assert_eq!(tensor_bytes(&mk("a"), 1), tensor_bytes(&mk("a"), 1));
        assert_ne!(tensor_bytes(&mk("a"), 1), tensor_bytes(&mk("a"), 2));
        assert_ne!(tensor_bytes(&mk("a"), 1), tensor_bytes(&mk("b"), 1));
        // Blocks are independent streams, not copies of one another.
        let b = tensor_bytes(&mk("a"), 1);
        assert_ne!(b[..64], b[BLOCK * 4..BLOCK * 4 + 64]);
    }

    #[test]
    fn named_shapes_have_their_real_sizes() {
        let p = plan(&RandomSpec::new(Variant::Marian, Shape::OpusMtViEn)).unwrap();
        // Marian opus-mt: 512-d, 6+6 layers, ~74M parameters with a ~54k vocabulary.
        assert_eq!(p.ids.pad, 53738);
        assert_eq!(p.ids.decoder_start, 53738);
        let n = p.num_parameters();
        assert!((70_000_000..80_000_000).contains(&n), "{n}");
        let p = plan(&RandomSpec::new(Variant::Bart, Shape::BartLargeCnn)).unwrap();
        let n = p.num_parameters();
        assert!((400_000_000..410_000_000).contains(&n), "bart-large {n}");
        let p = plan(&RandomSpec::new(Variant::T5, Shape::T5Small)).unwrap();
        let n = p.num_parameters();
        assert!((60_000_000..61_000_000).contains(&n), "t5-small {n}");
        let p = plan(&RandomSpec::new(Variant::T5v11, Shape::FlanT5Base)).unwrap();
        let n = p.num_parameters();
        assert!((247_000_000..249_000_000).contains(&n), "flan-t5-base {n}");
    }

    #[test]
    fn shape_and_arch_must_agree() {
        let e = plan(&RandomSpec::new(Variant::T5, Shape::OpusMtViEn)).unwrap_err();
        assert!(e.to_string().contains("opus-mt-vi-en"), "{e}");
    }

    #[test]
    fn ids_outside_vocab_are_rejected() {
        let mut s = RandomSpec::new(Variant::Bart, Shape::Tiny);
        s.vocab_size = Some(4);
        assert!(plan(&s).is_err());
    }

    #[test]
    fn tiny_models_are_small_and_keyed_like_hf() {
        for a in Variant::ALL {
            let p = tiny(a);
            assert!(p.data_bytes() < 1_000_000, "{a}: {}", p.data_bytes());
            let cfg = p.config.as_object().unwrap();
            let keys: Vec<&String> = cfg.keys().collect();
            let mut s = keys.clone();
            s.sort();
            assert_eq!(keys, s, "{a}: keys sorted like transformers writes them");
            assert_eq!(cfg["model_type"], a.model_type());
        }
        let t5 = tiny(Variant::T5v11);
        assert!(t5.tensors.iter().any(|t| t.name == "lm_head.weight"));
        assert!(!tiny(Variant::T5)
            .tensors
            .iter()
            .any(|t| t.name == "lm_head.weight"));
    }
}
