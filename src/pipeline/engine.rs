//! A loaded model with its tokenizer and generation settings: the real [`TextGenerator`].

use candle_core::Device;

use super::{Lengths, ModelInfo, PipelineError, TextGenerator};
use crate::batch::BatchLimits;
use crate::device::{resolve_dtype, DTypeArg, MemProfile};
use crate::generate::{generate_resolved, GenerationConfig};
use crate::hub::{self, HubOptions, Manifest};
use crate::model::Seq2SeqModel;
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

impl Engine {
    /// Load what `spec` names (built-in name, owner/name[@rev], manifest .toml or a local
    /// directory), downloading missing files unless offline.
    pub fn load(spec: &str, role: &str, opts: &EngineOptions) -> Result<Engine, PipelineError> {
        let mut hub_opts = HubOptions::from_env();
        hub_opts.offline |= opts.offline;
        hub_opts.progress = !opts.quiet;
        let (manifest, dir) =
            hub::resolve(spec, &hub_opts).map_err(|e| PipelineError::Model(e.to_string()))?;
        let device = parse_device(&opts.device)?;
        let config = hub::read_config(&dir).map_err(|e| PipelineError::Model(e.to_string()))?;
        let dtype = resolve_dtype(opts.dtype, &device, &config);
        let vb = hub::load_weights(&dir, dtype, &device)
            .map_err(|e| PipelineError::Model(e.to_string()))?;
        let model_err = |e: crate::model::ModelError| {
            PipelineError::Model(format!("{}: {e}", dir.display_name()))
        };
        let model: Box<dyn Seq2SeqModel> = if opts.quantize {
            let mut m = crate::model::linear::with_q8_at_load(|| {
                crate::model::load_transformer(&config, &vb)
            })
            .map_err(model_err)?;
            m.quantize_q8().map_err(model_err)?;
            Box::new(m)
        } else {
            crate::model::from_config(&config, vb).map_err(model_err)?
        };
        let tokenizer =
            Tokenizer::from_dir(&dir.root).map_err(|e| PipelineError::Tokenize(e.to_string()))?;
        let mut gen = GenerationConfig::from_model_dir(&dir.root)
            .map_err(|e| PipelineError::Model(e.to_string()))?;
        if let Some(m) = &manifest {
            apply_manifest(&mut gen, m, &tokenizer)?;
        }
        if let Some(k) = opts.beams {
            gen.num_beams = Some(k.max(1));
        }
        let prefix = match &manifest {
            Some(m) => m.prefix.clone(),
            // Without a manifest, T5-style configs carry their task prefixes.
            None if role == "summarizer" => config
                .pointer("/task_specific_params/summarization/prefix")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string(),
            None => String::new(),
        };
        let max_source = manifest
            .as_ref()
            .map(|m| m.max_input_tokens)
            .or_else(|| {
                config
                    .get("max_position_embeddings")
                    .and_then(|v| v.as_u64())
                    .map(|v| v as usize)
            })
            .or_else(|| {
                config
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
        let mem = match (
            device.is_cpu(),
            crate::model::ModelConfig::from_json(&config),
        ) {
            (false, Ok(cfg)) => {
                let r = gen
                    .resolve(model.vocab_size())
                    .map_err(|e| PipelineError::Model(e.to_string()))?;
                Some(MemProfile::new(
                    &cfg,
                    dtype,
                    r.num_beams,
                    r.max_length,
                    max_source,
                ))
            }
            _ => None,
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

/// Generation defaults of a manifest fill what the model's own files leave unset; an mBART
/// target language becomes the forced first token.
fn apply_manifest(
    gen: &mut GenerationConfig,
    m: &Manifest,
    tok: &Tokenizer,
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
        let id = tok.token_to_id(lang).ok_or_else(|| {
            PipelineError::Tokenize(format!(
                "{}: target language token '{lang}' is not in the vocabulary",
                m.name
            ))
        })?;
        gen.forced_bos_token_id = Some(id);
    }
    Ok(())
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
        let mut cfg = self.gen.clone();
        if lengths.min_new_tokens.is_some() {
            cfg.min_new_tokens = lengths.min_new_tokens;
            // An explicit length range replaces the model's own min_length.
            cfg.min_length = None;
        }
        if lengths.max_new_tokens.is_some() {
            cfg.max_new_tokens = lengths.max_new_tokens;
        }
        let resolved = cfg
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
