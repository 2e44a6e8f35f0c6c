//! A loaded model with its tokenizer and generation settings: the real [`TextGenerator`].

use std::path::Path;

use candle_core::{DType, Device};

use super::{Lengths, ModelInfo, PipelineError, TextGenerator};
use crate::batch::BatchLimits;
use crate::device::{resolve_dtype, DTypeArg, MemProfile};
use crate::generate::{generate_resolved, GenerationConfig};
use crate::hub::{self, HubOptions, Manifest};
use crate::model::{ModelConfig, Seq2SeqModel, Transformer};
use crate::tokenize::Tokenizer;

/// How to load engines.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// `cpu` or `cuda[:N]`.
    pub device: String,
    /// Model dtype (auto: f32 on CPU, f16 or bf16 on CUDA; see `crate::device`).
    pub dtype: DTypeArg,
    /// int8 projections (CPU, f32 models).
    pub quantize: bool,
    pub offline: bool,
    pub quiet: bool,
    pub threads: Option<usize>,
    pub workers: usize,
    /// Overrides the models' own beam size (1 = greedy).
    pub beams: Option<usize>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            device: "cpu".into(),
            dtype: DTypeArg::Auto,
            quantize: false,
            offline: false,
            quiet: true,
            threads: None,
            workers: 1,
            beams: None,
        }
    }
}

/// `cpu`, `cuda` or `cuda:N` (see [`crate::device::parse_device`]).
pub fn parse_device(s: &str) -> Result<Device, PipelineError> {
    crate::device::parse_device(s).map_err(|e| PipelineError::Model(e.to_string()))
}

pub struct Engine {
    info: ModelInfo,
    tokenizer: Tokenizer,
    model: Box<dyn Seq2SeqModel>,
    gen: GenerationConfig,
    prefix: String,
    output_prefix: Option<String>,
    max_source: usize,
    device: Device,
    /// Device memory a batch needs (GPU only).
    mem: Option<MemProfile>,
}

/// A model as every command loads it: the manifest that names it (built-in or user
/// `.toml`), its files, the network, and its generation settings (the model's own files,
/// then the manifest's defaults). `run`, `translate`, `summarize`, `generate` and `bench`
/// all load through [`load_model`].
pub struct LoadedModel {
    pub manifest: Option<Manifest>,
    /// The model's files; `dir.config` is its config.json, read once when the directory was
    /// opened (its JSON also serves the keys beyond the model's shape, e.g. `prefix`).
    pub dir: hub::ModelDir,
    /// `dir.config` as the typed settings the model was built from.
    pub config: ModelConfig,
    pub model: Box<dyn Seq2SeqModel>,
    /// `None` only when asked with `need_tokenizer = false` and the directory has none.
    pub tokenizer: Option<Tokenizer>,
    pub gen: GenerationConfig,
    pub device: Device,
    pub dtype: candle_core::DType,
}

impl LoadedModel {
    /// The text put before every input: the manifest's prompt file, else what the config
    /// carries ([`config_prefix`]).
    pub fn prefix(&self, summarizer: bool) -> String {
        match &self.manifest {
            Some(m) if !m.prefix.is_empty() => m.prefix.clone(),
            _ => config_prefix(&self.dir.config.json, summarizer).unwrap_or_default(),
        }
    }
}

/// Loads what `spec` names (built-in name, owner/name[@rev], manifest .toml or a local
/// directory), downloading missing files unless offline. With `need_tokenizer = false` a
/// local directory may lack tokenizer files (runs on token ids).
pub fn load_model(
    spec: &str,
    opts: &EngineOptions,
    need_tokenizer: bool,
) -> Result<LoadedModel, PipelineError> {
    let model_err = |e: &dyn std::fmt::Display| PipelineError::Model(e.to_string());
    let mut hub_opts = HubOptions::from_env();
    hub_opts.offline |= opts.offline;
    hub_opts.progress = !opts.quiet;
    let local = std::path::Path::new(spec);
    let (manifest, dir) = if !need_tokenizer && local.is_dir() {
        (
            None,
            hub::ModelDir::open_local_without_tokenizer(local).map_err(|e| model_err(&e))?,
        )
    } else {
        hub::resolve(spec, &hub_opts).map_err(|e| model_err(&e))?
    };
    load_opened(manifest, dir, opts, need_tokenizer)
}

/// [`load_model`] once `spec` names an opened directory. Everything here takes config.json
/// from `dir.config` (read when the directory was opened), never from the file again.
fn load_opened(
    manifest: Option<Manifest>,
    dir: hub::ModelDir,
    opts: &EngineOptions,
    need_tokenizer: bool,
) -> Result<LoadedModel, PipelineError> {
    let model_err = |e: &dyn std::fmt::Display| PipelineError::Model(e.to_string());
    let device = parse_device(&opts.device)?;
    let (config, model, dtype) = build_from_dir(&dir, opts.dtype, opts.quantize, &device)?;
    // Keyword arguments the manifest gives the tokenizer, as the model card passes them.
    let kwargs: Vec<(&str, &str)> = manifest
        .as_ref()
        .and_then(|m| m.src_lang.as_deref())
        .map(|l| ("src_lang", l))
        .into_iter()
        .collect();
    let tokenizer = match Tokenizer::from_dir_with_config(&dir.root, &kwargs, &dir.config.json) {
        Ok(t) => Some(t),
        Err(_) if !need_tokenizer => None,
        Err(e) => return Err(PipelineError::Tokenize(e.to_string())),
    };
    let mut gen = GenerationConfig::from_model_dir_with_config(&dir.root, &dir.config.json)
        .map_err(|e| model_err(&e))?;
    if let Some(m) = &manifest {
        apply_manifest(&mut gen, m, tokenizer.as_ref())?;
    }
    if let Some(k) = opts.beams {
        gen.num_beams = Some(k.max(1));
    }
    Ok(LoadedModel {
        manifest,
        dir,
        config,
        model: Box::new(model),
        tokenizer,
        gen,
        device,
        dtype,
    })
}

/// The model half of [`load_model`]: `dir`'s config.json (read when `dir` was opened) as
/// typed settings, the dtype they call for, the weights, the model.
fn build_from_dir(
    dir: &hub::ModelDir,
    dtype: DTypeArg,
    quantize: bool,
    device: &Device,
) -> Result<(ModelConfig, Transformer, DType), PipelineError> {
    let named =
        |e: crate::model::ModelError| PipelineError::Model(format!("{}: {e}", dir.display_name()));
    let config = ModelConfig::from_json(&dir.config.json).map_err(named)?;
    let dtype = resolve_dtype(dtype, device, &config);
    let vb =
        hub::load_weights(dir, dtype, device).map_err(|e| PipelineError::Model(e.to_string()))?;
    let model = build_model(&config, &vb, quantize).map_err(named)?;
    Ok((config, model, dtype))
}

/// A model directory (tokenizer files optional) loaded the way [`load_model`] loads it (same
/// directory checks, one read of config.json, dtype choice, weights and build), returned as
/// the concrete [`Transformer`]: the parity tests and benches need `decode_full`, `config()`
/// and `quantize_q8`.
pub fn load_transformer(
    dir: &Path,
    dtype: DTypeArg,
    device: &Device,
) -> Result<Transformer, PipelineError> {
    let dir = hub::ModelDir::open_local_without_tokenizer(dir)
        .map_err(|e| PipelineError::Model(e.to_string()))?;
    Ok(build_from_dir(&dir, dtype, false, device)?.1)
}

/// The model of `config`, its projections int8 with `quantize` (CPU, f32 weights).
pub fn build_model(
    config: &ModelConfig,
    vb: &candle_nn::VarBuilder,
    quantize: bool,
) -> Result<Transformer, crate::model::ModelError> {
    let opts = crate::model::LoadOptions { q8: quantize };
    let mut m = crate::model::build(config, vb, opts)?;
    if quantize {
        // covers anything the load kept in f32 (e.g. non-CPU devices give a clear error)
        m.quantize_q8()?;
    }
    Ok(m)
}

impl Engine {
    /// Load what `spec` names (see [`load_model`]) for a pipeline stage.
    pub fn load(spec: &str, role: &str, opts: &EngineOptions) -> Result<Engine, PipelineError> {
        let loaded = load_model(spec, opts, true)?;
        let prefix = loaded.prefix(role == "summarizer");
        let LoadedModel {
            manifest,
            dir,
            config,
            model,
            tokenizer,
            gen,
            device,
            dtype,
        } = loaded;
        let tokenizer = tokenizer.ok_or_else(|| {
            PipelineError::Tokenize(format!("{}: no tokenizer", dir.display_name()))
        })?;
        let max_source = manifest
            .as_ref()
            .map(|m| m.max_input_tokens)
            .or_else(|| {
                dir.config
                    .json
                    .get("max_position_embeddings")
                    .and_then(|v| v.as_u64())
                    .map(|v| v as usize)
            })
            .or_else(|| {
                dir.config
                    .json
                    .get("n_positions")
                    .and_then(|v| v.as_u64())
                    .map(|v| v as usize)
            })
            .unwrap_or(512);
        let info = ModelInfo {
            name: manifest
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_else(|| spec.to_string()),
            repo: dir.repo.clone(),
            revision: dir.commit.clone().or_else(|| dir.revision.clone()),
        };
        let mem = if device.is_cpu() {
            None
        } else {
            let r = gen
                .resolve(model.vocab_size())
                .map_err(|e| PipelineError::Model(e.to_string()))?;
            Some(MemProfile::new(
                &config,
                dtype,
                r.num_beams,
                r.max_length,
                max_source,
            ))
        };
        Ok(Engine {
            mem,
            info,
            tokenizer,
            model,
            gen,
            prefix,
            output_prefix: manifest.and_then(|m| m.output_prefix),
            max_source,
            device,
        })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// `limits` shrunk to what fits in the GPU's free memory now (unchanged on CPU).
    pub fn fit_limits(&self, limits: BatchLimits) -> BatchLimits {
        match (&self.mem, crate::device::memory_info(&self.device)) {
            (Some(p), Some((free, _))) => p.fit(limits, free as u64, 16),
            _ => limits,
        }
    }
}

/// The input prefix a config.json carries: a top-level `prefix` (the BART CNN summarizers'
/// " ", which the summarization pipeline and the distillation used), or for a summarizer
/// `task_specific_params.summarization.prefix` (T5's "summarize: "), as transformers'
/// pipelines apply them.
pub fn config_prefix(config: &serde_json::Value, summarizer: bool) -> Option<String> {
    summarizer
        .then(|| config.pointer("/task_specific_params/summarization/prefix"))
        .flatten()
        .or_else(|| config.get("prefix"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

/// Generation defaults of a manifest fill what the model's own files leave unset; an mBART
/// target language becomes the decoder start token, as the model cards generate with
/// `decoder_start_token_id=tokenizer.lang_code_to_id["en_XX"]`.
fn apply_manifest(
    gen: &mut GenerationConfig,
    m: &Manifest,
    tok: Option<&Tokenizer>,
) -> Result<(), PipelineError> {
    let g = &m.generation;
    gen.num_beams.get_or_insert(g.num_beams);
    gen.length_penalty.get_or_insert(g.length_penalty as f64);
    gen.no_repeat_ngram_size
        .get_or_insert(g.no_repeat_ngram_size);
    gen.min_length.get_or_insert(g.min_length);
    gen.max_length.get_or_insert(g.max_length);
    if gen.early_stopping.is_none() {
        gen.early_stopping = Some(if g.early_stopping {
            crate::generate::EarlyStopping::True
        } else {
            crate::generate::EarlyStopping::Heuristic
        });
    }
    if let Some(lang) = &m.tgt_lang {
        let id = tok.and_then(|t| t.token_to_id(lang)).ok_or_else(|| {
            PipelineError::Tokenize(format!(
                "{}: target language token '{lang}' is not in the vocabulary",
                m.name
            ))
        })?;
        gen.decoder_start_token_id = Some(id);
    }
    Ok(())
}

/// The settings of one generate call: `lengths` override the model's own.
fn call_config(gen: &GenerationConfig, lengths: Lengths) -> GenerationConfig {
    let mut cfg = gen.clone();
    if lengths.min_new_tokens.is_some() {
        cfg.min_new_tokens = lengths.min_new_tokens;
        // An explicit length range replaces the model's own min_length.
        cfg.min_length = None;
    }
    if let Some(cap) = lengths.max_new_tokens {
        cfg.max_new_tokens = Some(cap);
        // A cap alone (a map-reduce partial summary) under the model's own minimum
        // (distilbart's min_length 56) would mask EOS up to the cap and cut every output:
        // the minimum drops to half the cap.
        let model_min = cfg
            .min_new_tokens
            .or(cfg.min_length.map(|m| m.saturating_sub(1)))
            .unwrap_or(0);
        if lengths.min_new_tokens.is_none() && model_min > cap / 2 {
            cfg.min_new_tokens = Some(cap / 2);
            cfg.min_length = None;
        }
    }
    cfg
}

impl TextGenerator for Engine {
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, PipelineError> {
        let err = |e: crate::tokenize::TokenizeError| PipelineError::Tokenize(e.to_string());
        if self.prefix.is_empty() {
            self.tokenizer.encode_batch(texts).map_err(err)
        } else {
            let owned: Vec<String> = texts
                .iter()
                .map(|t| format!("{}{t}", self.prefix))
                .collect();
            let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
            self.tokenizer.encode_batch(&refs).map_err(err)
        }
    }

    fn max_source_tokens(&self) -> usize {
        self.max_source
    }

    fn generate(
        &self,
        sources: &[Vec<u32>],
        lengths: Lengths,
    ) -> Result<Vec<(String, usize)>, PipelineError> {
        let resolved = call_config(&self.gen, lengths)
            .resolve(self.model.vocab_size())
            .map_err(|e| PipelineError::Model(e.to_string()))?;
        let out = generate_resolved(self.model.as_ref(), sources, &resolved, &self.device)
            .map_err(|e| PipelineError::Model(e.to_string()))?;
        out.into_iter()
            .map(|ids| {
                let mut text = self
                    .tokenizer
                    .decode(&ids, true)
                    .map_err(|e| PipelineError::Tokenize(e.to_string()))?;
                if let Some(p) = &self.output_prefix {
                    if let Some(rest) = text.strip_prefix(p.as_str()) {
                        text = rest.to_string();
                    }
                }
                Ok((text.trim().to_string(), ids.len()))
            })
            .collect()
    }

    fn info(&self) -> ModelInfo {
        self.info.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cnn_defaults() -> GenerationConfig {
        GenerationConfig {
            min_length: Some(56),
            max_length: Some(142),
            decoder_start_token_id: Some(2),
            eos_token_id: Some(crate::generate::TokenIds::One(2)),
            ..Default::default()
        }
    }

    /// vinai-translate: the manifest's src_lang reaches the tokenizer (the repo has no
    /// tokenizer_config.json) and tgt_lang becomes the decoder start token, as the model
    /// card's `generate(decoder_start_token_id=lang_code_to_id["en_XX"])`.
    #[test]
    fn mbart_languages_from_the_manifest() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tokenizers/mbart-spm");
        let d = tempfile::tempdir().unwrap();
        for f in ["sentencepiece.bpe.model", "config.json"] {
            std::fs::copy(src.join(f), d.path().join(f)).unwrap();
        }
        let m = hub::builtin_manifest("vinai-translate-vi2en-v2").unwrap();
        let kw = [("src_lang", m.src_lang.as_deref().unwrap())];
        let tok = Tokenizer::from_dir_with(d.path(), &kw).unwrap();
        let vi = tok.token_to_id("vi_VN").unwrap();
        let en = tok.token_to_id("en_XX").unwrap();
        let ids = tok.encode("xin chào").unwrap();
        assert_eq!(ids[ids.len() - 2..], [2, vi], "{ids:?}");
        let mut gen = GenerationConfig::default();
        apply_manifest(&mut gen, &m, Some(&tok)).unwrap();
        assert_eq!(gen.decoder_start_token_id, Some(en));
        assert_eq!(gen.forced_bos_token_id, None);
    }

    /// config.json is read once, when the directory is opened: the rest of the load (typed
    /// config, dtype, model, tokenizer, generation settings) works from that read even when
    /// the file is garbage by then.
    #[test]
    fn a_load_reads_config_json_once() {
        use crate::testkit::random_model::{write_random_model, RandomSpec, Shape, Variant};
        let d = tempfile::tempdir().unwrap();
        let mut spec = RandomSpec::new(Variant::Marian, Shape::Tiny);
        let tok = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tokenizers/marian-vi-en");
        spec.tokenizer = Some(tok);
        write_random_model(&spec, d.path()).unwrap();
        let dir = hub::ModelDir::open_local(d.path()).unwrap();
        std::fs::write(d.path().join("config.json"), "not JSON").unwrap();
        let m = load_opened(None, dir, &EngineOptions::default(), true).unwrap();
        assert_eq!(m.config.arch, crate::model::Arch::Marian);
        assert!(m.tokenizer.is_some());
        // the file itself is unreadable now: a second read would have failed
        assert!(hub::ModelDir::open_local(d.path()).is_err());
    }

    #[test]
    fn prefixes_from_the_config() {
        let bart = serde_json::json!({"prefix": " ", "task_specific_params": {"summarization":
            {"min_length": 56}}});
        assert_eq!(config_prefix(&bart, true).as_deref(), Some(" "));
        assert_eq!(config_prefix(&bart, false).as_deref(), Some(" "));
        let t5 = serde_json::json!({"task_specific_params": {"summarization":
            {"prefix": "summarize: "}, "translation_en_to_de": {"prefix": "x"}}});
        assert_eq!(config_prefix(&t5, true).as_deref(), Some("summarize: "));
        assert_eq!(config_prefix(&t5, false), None);
        assert_eq!(config_prefix(&serde_json::json!({}), true), None);
    }

    #[test]
    fn a_cap_below_the_model_minimum_lowers_the_minimum() {
        let cap = |n| Lengths {
            min_new_tokens: None,
            max_new_tokens: Some(n),
        };
        // partial summary capped at 32 tokens: EOS must become reachable before the cap
        let c = call_config(&cnn_defaults(), cap(32));
        let r = c.resolve(1000).unwrap();
        // (lengths count the decoder start token)
        assert_eq!(r.max_length, 33);
        assert_eq!(r.processors.min_length, 17);
        // a cap well above the model's minimum keeps it (55 new tokens = min_length 56)
        let r = call_config(&cnn_defaults(), cap(200))
            .resolve(1000)
            .unwrap();
        assert_eq!(r.processors.min_length, 56);
        // no lengths: the model's own settings
        let r = call_config(&cnn_defaults(), Lengths::default())
            .resolve(1000)
            .unwrap();
        assert_eq!((r.processors.min_length, r.max_length), (56, 142));
        // an explicit range wins
        let both = Lengths {
            min_new_tokens: Some(20),
            max_new_tokens: Some(30),
        };
        let r = call_config(&cnn_defaults(), both).resolve(1000).unwrap();
        assert_eq!((r.processors.min_length, r.max_length), (21, 31));
    }
}
