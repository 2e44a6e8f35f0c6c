//! Model manifests: a small TOML file per known model naming its repo, pinned revision,
//! architecture, task and generation defaults. Built-in ones are compiled into the binary;
//! a user's `.toml` works the same way.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Arch, HubError};

/// What a model is used for in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Vietnamese sentences in, English sentences out.
    TranslateViEn,
    /// English article in, English summary out.
    SummarizeEn,
    /// Vietnamese article in, Vietnamese summary out.
    SummarizeVi,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::TranslateViEn => "translate-vi-en",
            Task::SummarizeEn => "summarize-en",
            Task::SummarizeVi => "summarize-vi",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which tokenizer family the model uses (mirrors the transformers tokenizer classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenizerKind {
    /// MarianTokenizer: source.spm / target.spm + vocab.json.
    Marian,
    /// BartTokenizer: byte-level BPE (vocab.json + merges.txt).
    Bart,
    /// MBartTokenizer / MBart50Tokenizer: sentencepiece.bpe.model + language codes.
    Mbart,
    /// T5Tokenizer: spiece.model (unigram).
    T5,
}

/// Generation defaults, as the model's own config.json / generation_config.json set them.
/// Missing keys take transformers' defaults, except `max_length`, which must be given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationDefaults {
    #[serde(default = "one")]
    pub num_beams: usize,
    #[serde(default = "one_f32")]
    pub length_penalty: f32,
    #[serde(default)]
    pub no_repeat_ngram_size: usize,
    #[serde(default)]
    pub min_length: usize,
    pub max_length: usize,
    #[serde(default)]
    pub early_stopping: bool,
}

fn one() -> usize {
    1
}

fn one_f32() -> f32 {
    1.0
}

fn main_rev() -> String {
    super::DEFAULT_REVISION.to_string()
}

/// One model manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Short name users type (`tomtat models download opus-mt-vi-en`).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Hub repo id, or a local directory (relative to the manifest file).
    pub repo: String,
    /// Pinned revision (commit sha preferred; a branch or `refs/pr/N` works).
    #[serde(default = "main_rev")]
    pub revision: String,
    /// marian | bart | mbart | t5 (checked against config.json when loading).
    pub architecture: String,
    pub tokenizer: TokenizerKind,
    pub task: Task,
    /// Text put before every input, from a file in `prompts/` (e.g. `summarize.txt`). For a
    /// user manifest: a path relative to the manifest, or a built-in prompt name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_file: Option<String>,
    /// Longest input (in tokens, special tokens included) the model was trained on.
    pub max_input_tokens: usize,
    /// mBART: source language code (`vi_VN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_lang: Option<String>,
    /// mBART: target language code forced as the first generated token (`en_XX`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tgt_lang: Option<String>,
    /// A revision of the same repo whose `model.safetensors` holds the pinned revision's
    /// weights (the Hub's safetensors-conversion PR, e.g. `refs/pr/18`): downloaded instead
    /// of a `pytorch_model.bin` when the pinned revision has only that; the rest of the
    /// files still come from `revision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safetensors_revision: Option<String>,
    /// Text the model puts before every output, to strip (envit5 writes `en: `).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_prefix: Option<String>,
    pub generation: GenerationDefaults,
    /// The task prefix text read from `prefix_file` (empty when none).
    #[serde(skip)]
    pub prefix: String,
    /// `built-in` or the manifest's path, for messages.
    #[serde(skip)]
    pub origin: String,
}

/// Built-in manifests and prompts, compiled in so the binary works from any directory.
const BUILTIN: [(&str, &str); 7] = [
    (
        "opus-mt-vi-en.toml",
        include_str!("../../models/opus-mt-vi-en.toml"),
    ),
    (
        "envit5-translation.toml",
        include_str!("../../models/envit5-translation.toml"),
    ),
    (
        "vinai-translate-vi2en-v2.toml",
        include_str!("../../models/vinai-translate-vi2en-v2.toml"),
    ),
    (
        "distilbart-cnn-12-6.toml",
        include_str!("../../models/distilbart-cnn-12-6.toml"),
    ),
    (
        "bart-large-cnn.toml",
        include_str!("../../models/bart-large-cnn.toml"),
    ),
    (
        "flan-t5-base.toml",
        include_str!("../../models/flan-t5-base.toml"),
    ),
    (
        "vit5-base-vietnews-summarization.toml",
        include_str!("../../models/vit5-base-vietnews-summarization.toml"),
    ),
];

const PROMPTS: [(&str, &str); 3] = [
    ("summarize.txt", include_str!("../../prompts/summarize.txt")),
    ("vietnews.txt", include_str!("../../prompts/vietnews.txt")),
    ("envit5-vi.txt", include_str!("../../prompts/envit5-vi.txt")),
];

/// All built-in manifests, in a stable order (translation first).
pub fn builtin_manifests() -> Vec<Manifest> {
    BUILTIN
        .iter()
        .filter_map(|(file, text)| {
            // Built-ins are checked by a unit test; a broken one is skipped, not a panic.
            Manifest::parse(text, &format!("built-in models/{file}"), None)
                .map_err(|e| tracing::error!("{e}"))
                .ok()
        })
        .collect()
}

/// The built-in manifest called `name`.
pub fn builtin_manifest(name: &str) -> Option<Manifest> {
    builtin_manifests().into_iter().find(|m| m.name == name)
}

/// A built-in prompt by file name (`summarize.txt` or `prompts/summarize.txt`).
fn builtin_prompt(name: &str) -> Option<&'static str> {
    let name = name.strip_prefix("prompts/").unwrap_or(name);
    PROMPTS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Prompt files hold the prefix verbatim; one trailing newline (editors add it) is dropped.
fn prompt_text(raw: &str) -> String {
    raw.strip_suffix("\r\n")
        .or_else(|| raw.strip_suffix('\n'))
        .unwrap_or(raw)
        .to_string()
}

impl Manifest {
    /// Reads a user manifest; `prefix_file` is looked up next to it, then among built-ins.
    pub fn from_file(path: &Path) -> Result<Manifest, HubError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| HubError::Manifest {
            origin: origin.clone(),
            detail: format!("cannot read: {e}"),
        })?;
        Manifest::parse(&text, &origin, path.parent())
    }

    /// Parses and checks a manifest. `base`: directory for relative `prefix_file` paths.
    pub fn parse(text: &str, origin: &str, base: Option<&Path>) -> Result<Manifest, HubError> {
        let err = |detail: String| HubError::Manifest {
            origin: origin.to_string(),
            detail,
        };
        let mut m: Manifest = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        m.origin = origin.to_string();
        if m.name.trim().is_empty() || m.name.chars().any(char::is_whitespace) {
            return Err(err(format!(
                "name `{}` must be non-empty without spaces",
                m.name
            )));
        }
        if m.name.contains('@') {
            return Err(err(format!("name `{}` must not contain `@`", m.name)));
        }
        m.arch()?;
        if m.max_input_tokens == 0 {
            return Err(err("max_input_tokens must be at least 1".into()));
        }
        let g = &m.generation;
        if g.num_beams == 0 {
            return Err(err("generation.num_beams must be at least 1".into()));
        }
        if g.max_length == 0 || g.min_length > g.max_length {
            return Err(err(format!(
                "generation: need 0 < min_length ({}) <= max_length ({})",
                g.min_length, g.max_length
            )));
        }
        if !g.length_penalty.is_finite() {
            return Err(err(
                "generation.length_penalty must be a finite number".into()
            ));
        }
        if m.revision.trim().is_empty() {
            return Err(err("revision must not be empty".into()));
        }
        if let Some(pf) = &m.prefix_file {
            let local = base.map(|b| b.join(pf)).filter(|p| p.is_file());
            m.prefix = match (local, builtin_prompt(pf)) {
                (Some(p), _) => prompt_text(
                    &std::fs::read_to_string(&p)
                        .map_err(|e| err(format!("prefix_file {}: {e}", p.display())))?,
                ),
                (None, Some(t)) => prompt_text(t),
                (None, None) => {
                    return Err(err(format!(
                        "prefix_file `{pf}` not found (built-in prompts: {})",
                        PROMPTS.map(|(n, _)| n).join(", ")
                    )))
                }
            };
        }
        Ok(m)
    }

    /// The architecture, or an error naming the unknown value and the supported ones.
    pub fn arch(&self) -> Result<Arch, HubError> {
        Arch::from_model_type(&self.architecture).ok_or_else(|| HubError::UnknownArchitecture {
            origin: format!("manifest {}", self.origin),
            found: self.architecture.clone(),
            supported: Arch::supported_list(),
        })
    }

    /// The manifest as TOML (without the computed fields).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_cover_the_required_models() {
        assert_eq!(
            builtin_manifests().len(),
            BUILTIN.len(),
            "a built-in failed"
        );
        let repos: Vec<String> = builtin_manifests().into_iter().map(|m| m.repo).collect();
        for r in [
            "Helsinki-NLP/opus-mt-vi-en",
            "VietAI/envit5-translation",
            "sshleifer/distilbart-cnn-12-6",
            "facebook/bart-large-cnn",
            "google/flan-t5-base",
            "VietAI/vit5-base-vietnews-summarization",
            "vinai/vinai-translate-vi2en-v2",
        ] {
            assert!(repos.iter().any(|x| x == r), "{r} missing");
        }
        let mut names: Vec<String> = builtin_manifests().into_iter().map(|m| m.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), BUILTIN.len(), "duplicate names");
    }

    #[test]
    fn builtin_values() {
        let d = builtin_manifest("distilbart-cnn-12-6").unwrap();
        assert_eq!(d.arch().unwrap(), Arch::Bart);
        assert_eq!(d.task, Task::SummarizeEn);
        assert_eq!(
            d.generation,
            GenerationDefaults {
                num_beams: 4,
                length_penalty: 2.0,
                no_repeat_ngram_size: 3,
                min_length: 56,
                max_length: 142,
                early_stopping: true
            }
        );
        assert_eq!(d.prefix, "");
        let f = builtin_manifest("flan-t5-base").unwrap();
        assert_eq!(f.prefix, "summarize: ");
        assert_eq!(f.arch().unwrap(), Arch::T5);
        let v = builtin_manifest("vinai-translate-vi2en-v2").unwrap();
        assert_eq!(v.arch().unwrap(), Arch::MBart);
        assert_eq!(v.tgt_lang.as_deref(), Some("en_XX"));
        assert_eq!(v.src_lang.as_deref(), Some("vi_VN"));
        // ViT5 base needs no prefix (model card); its window is the fine-tuning's 1024
        let vit5 = builtin_manifest("vit5-base-vietnews-summarization").unwrap();
        assert_eq!(vit5.prefix, "");
        assert_eq!(vit5.max_input_tokens, 1024);
        // opus-mt-vi-en's config.json says num_beams 6
        let o = builtin_manifest("opus-mt-vi-en").unwrap();
        assert_eq!(o.generation.num_beams, 6);
        let e = builtin_manifest("envit5-translation").unwrap();
        assert_eq!(e.prefix, "vi: ");
        assert_eq!(e.output_prefix.as_deref(), Some("en: "));
    }

    #[test]
    fn toml_round_trip() {
        for m in builtin_manifests() {
            let back = Manifest::parse(&m.to_toml(), &m.origin, None).unwrap();
            assert_eq!(back, m);
        }
    }

    const USER: &str = r#"
name = "mine"
repo = "me/my-model"
architecture = "t5"
tokenizer = "t5"
task = "summarize-en"
prefix_file = "p.txt"
max_input_tokens = 512
[generation]
max_length = 64
"#;

    #[test]
    fn user_manifest_with_local_prompt_and_defaults() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("p.txt"), "tl;dr: \n").unwrap();
        let p = d.path().join("m.toml");
        std::fs::write(&p, USER).unwrap();
        let m = Manifest::from_file(&p).unwrap();
        assert_eq!(m.prefix, "tl;dr: ");
        assert_eq!(m.revision, "main");
        assert_eq!(m.generation.num_beams, 1);
        assert_eq!(m.generation.length_penalty, 1.0);
        // Falls back to a built-in prompt name.
        std::fs::write(&p, USER.replace("p.txt", "prompts/summarize.txt")).unwrap();
        assert_eq!(Manifest::from_file(&p).unwrap().prefix, "summarize: ");
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let e = Manifest::parse(
            &USER.replace("architecture = \"t5\"", "architecture = \"pegasus\""),
            "x",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("pegasus") && e.contains("marian, bart, mbart, t5"),
            "{e}"
        );
        let e = Manifest::parse(&USER.replace("summarize-en", "summarise"), "x", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("summarise") && e.contains("summarize-en"), "{e}");
        let e = Manifest::parse(&USER.replace("p.txt", "nope.txt"), "x", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.txt") && e.contains("summarize.txt"), "{e}");
        let e = Manifest::parse(
            &USER.replace("max_length = 64", "max_length = 0"),
            "x",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("max_length"), "{e}");
        let e = Manifest::parse(&format!("{USER}\nextra = 1\n"), "x", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("extra"), "{e}");
    }
}
