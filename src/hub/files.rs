//! Which files a model needs, chosen from what a repo or directory has.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::config::{read_json, ConfigJson};
use super::{Arch, HubError};

pub(crate) const CONFIG: &str = "config.json";
pub(crate) const GENERATION_CONFIG: &str = "generation_config.json";
pub(crate) const SAFETENSORS: &str = "model.safetensors";
pub(crate) const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";
pub(crate) const PYTORCH_BIN: &str = "pytorch_model.bin";
const PYTORCH_BIN_INDEX: &str = "pytorch_model.bin.index.json";

/// Tokenizer files fetched whenever the repo has them; which of them are required depends
/// on the architecture (see [`check_tokenizer`]).
pub(crate) const TOKENIZER_FILES: [&str; 9] = [
    "tokenizer.json",
    "source.spm",
    "target.spm",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// Tokenizer files present for a model (each under the model root).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenizerFiles {
    pub tokenizer_json: Option<PathBuf>,
    /// Marian: source-side sentencepiece model.
    pub source_spm: Option<PathBuf>,
    /// Marian: target-side sentencepiece model.
    pub target_spm: Option<PathBuf>,
    /// Marian: shared token -> id map; BART: byte-level BPE vocabulary.
    pub vocab_json: Option<PathBuf>,
    /// BART: byte-level BPE merges.
    pub merges_txt: Option<PathBuf>,
    /// T5: sentencepiece model.
    pub spiece_model: Option<PathBuf>,
    /// mBART: sentencepiece model.
    pub sentencepiece_bpe_model: Option<PathBuf>,
    pub tokenizer_config: Option<PathBuf>,
    pub special_tokens_map: Option<PathBuf>,
}

impl TokenizerFiles {
    pub(crate) fn slot(&mut self, name: &str) -> Option<&mut Option<PathBuf>> {
        Some(match name {
            "tokenizer.json" => &mut self.tokenizer_json,
            "source.spm" => &mut self.source_spm,
            "target.spm" => &mut self.target_spm,
            "vocab.json" => &mut self.vocab_json,
            "merges.txt" => &mut self.merges_txt,
            "spiece.model" => &mut self.spiece_model,
            "sentencepiece.bpe.model" => &mut self.sentencepiece_bpe_model,
            "tokenizer_config.json" => &mut self.tokenizer_config,
            "special_tokens_map.json" => &mut self.special_tokens_map,
            _ => return None,
        })
    }

    fn all(&self) -> Vec<&Path> {
        [
            &self.tokenizer_json,
            &self.source_spm,
            &self.target_spm,
            &self.vocab_json,
            &self.merges_txt,
            &self.spiece_model,
            &self.sentencepiece_bpe_model,
            &self.tokenizer_config,
            &self.special_tokens_map,
        ]
        .into_iter()
        .flatten()
        .map(PathBuf::as_path)
        .collect()
    }
}

/// The weights of a model, in the order tomtat prefers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightFiles {
    /// `model.safetensors`.
    Safetensors(PathBuf),
    /// `model.safetensors.index.json` and the shards its `weight_map` names.
    ShardedSafetensors {
        index: PathBuf,
        shards: Vec<PathBuf>,
    },
    /// A `pytorch_model.bin`: zip format (torch >= 1.6) or legacy pickle (older torch).
    PytorchBin(PathBuf),
}

impl WeightFiles {
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            WeightFiles::Safetensors(p) | WeightFiles::PytorchBin(p) => vec![p.as_path()],
            WeightFiles::ShardedSafetensors { index, shards } => std::iter::once(index.as_path())
                .chain(shards.iter().map(PathBuf::as_path))
                .collect(),
        }
    }
}

/// All files a model needs, as absolute (or root-relative) paths under its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    pub config: PathBuf,
    pub generation_config: Option<PathBuf>,
    pub tokenizer: TokenizerFiles,
    pub weights: WeightFiles,
}

impl ModelFiles {
    /// Every file, config first, weights last.
    pub fn paths(&self) -> Vec<&Path> {
        let mut v = vec![self.config.as_path()];
        v.extend(self.generation_config.as_deref());
        v.extend(self.tokenizer.all());
        v.extend(self.weights.paths());
        v
    }
}

/// Where files are looked for, for error messages.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    Local,
    Cache {
        repo: String,
        revision: String,
        cache: PathBuf,
        offline: bool,
    },
}

impl Origin {
    fn missing(&self, dir: &Path, file: &str, detail: String) -> HubError {
        match self {
            Origin::Local => HubError::MissingFile {
                where_: dir.display().to_string(),
                detail,
            },
            Origin::Cache {
                repo,
                revision,
                cache,
                offline,
            } => HubError::NotCached {
                repo: repo.clone(),
                revision: revision.clone(),
                file: file.to_string(),
                cache: cache.clone(),
                offline: *offline,
            },
        }
    }
}

/// Which weights file(s) to use, from a repo's or directory's file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WeightChoice {
    Single(&'static str),
    Index(&'static str),
    Bin(&'static str),
}

pub(crate) fn choose_weights(names: &BTreeSet<String>) -> Option<WeightChoice> {
    if names.contains(SAFETENSORS) {
        Some(WeightChoice::Single(SAFETENSORS))
    } else if names.contains(SAFETENSORS_INDEX) {
        Some(WeightChoice::Index(SAFETENSORS_INDEX))
    } else if names.contains(PYTORCH_BIN) {
        Some(WeightChoice::Bin(PYTORCH_BIN))
    } else {
        None
    }
}

/// Why no weights could be chosen, listing what is there.
pub(crate) fn no_weights_detail(names: &BTreeSet<String>) -> String {
    let mut d = format!(
        "no usable weights: need {SAFETENSORS}, {SAFETENSORS_INDEX} (+ shards) or {PYTORCH_BIN}"
    );
    if names.contains(PYTORCH_BIN_INDEX) {
        d.push_str(&format!(
            "; sharded {PYTORCH_BIN_INDEX} is not supported, convert to safetensors"
        ));
    }
    let others: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| {
            n.ends_with(".bin")
                || n.ends_with(".h5")
                || n.ends_with(".msgpack")
                || n.ends_with(".safetensors")
                || n.ends_with(".ckpt")
                || n.ends_with(".pt")
                || n.ends_with(".onnx")
        })
        .collect();
    if !others.is_empty() {
        d.push_str(&format!(" (found only: {})", others.join(", ")));
    }
    d
}

/// Shard file names from a `model.safetensors.index.json`, in first-use order, checked to
/// stay inside the model directory.
pub(crate) fn shard_names(index: &Path) -> Result<Vec<String>, HubError> {
    let v = read_json(index)?;
    let bad = |detail: String| HubError::BadFile {
        file: index.to_path_buf(),
        detail,
    };
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("no `weight_map` object".into()))?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (tensor, file) in map {
        let f = file
            .as_str()
            .ok_or_else(|| bad(format!("weight_map[{tensor}] is not a file name")))?;
        if !is_safe_relative(f) {
            return Err(bad(format!("shard name `{f}` escapes the model directory")));
        }
        if seen.insert(f.to_string()) {
            out.push(f.to_string());
        }
    }
    if out.is_empty() {
        return Err(bad("`weight_map` is empty".into()));
    }
    Ok(out)
}

/// A repo-relative file name that cannot point outside the directory.
pub(crate) fn is_safe_relative(name: &str) -> bool {
    let p = Path::new(name);
    !name.is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// What a tokenizer for `arch` needs; `None` when `tok` has it.
pub(crate) fn check_tokenizer(arch: Arch, tok: &TokenizerFiles) -> Option<String> {
    if tok.tokenizer_json.is_some() {
        return None;
    }
    let ok = match arch {
        Arch::Marian => {
            tok.source_spm.is_some() && tok.target_spm.is_some() && tok.vocab_json.is_some()
        }
        Arch::Bart => tok.vocab_json.is_some() && tok.merges_txt.is_some(),
        Arch::MBart => tok.sentencepiece_bpe_model.is_some(),
        Arch::T5 => tok.spiece_model.is_some(),
    };
    if ok {
        return None;
    }
    Some(format!(
        "no tokenizer for a {arch} model: need tokenizer.json or {}",
        tokenizer_need(arch)
    ))
}

fn tokenizer_need(arch: Arch) -> &'static str {
    match arch {
        Arch::Marian => "source.spm + target.spm + vocab.json",
        Arch::Bart => "vocab.json + merges.txt",
        Arch::MBart => "sentencepiece.bpe.model",
        Arch::T5 => "spiece.model",
    }
}

/// The first tokenizer file a model of `arch` lacks, for "not in cache" messages.
fn first_missing_tokenizer_file(arch: Arch, tok: &TokenizerFiles) -> &'static str {
    match arch {
        Arch::Marian if tok.source_spm.is_none() => "source.spm",
        Arch::Marian if tok.target_spm.is_none() => "target.spm",
        Arch::Marian => "vocab.json",
        Arch::Bart if tok.vocab_json.is_none() => "vocab.json",
        Arch::Bart => "merges.txt",
        Arch::MBart => "sentencepiece.bpe.model",
        Arch::T5 => "spiece.model",
    }
}

/// Chooses the model's files from what lies in `dir` (a local model dir or a cache
/// snapshot). Needs config.json (with a supported architecture), weights and, unless
/// `need_tokenizer` is false (running a model on token ids needs none), a tokenizer for
/// that architecture.
pub(crate) fn select_on_disk_with(
    dir: &Path,
    origin: &Origin,
    need_tokenizer: bool,
) -> Result<(ModelFiles, ConfigJson), HubError> {
    select_on_disk_full(dir, origin, need_tokenizer, None, None)
}

/// [`select_on_disk_with`]; `weights`, when given, are used instead of any in `dir`
/// (safetensors from another revision of the repo); `parsed`, when given, is `dir`'s
/// config.json already read (a download reads it first), so it is not read again.
pub(crate) fn select_on_disk_full(
    dir: &Path,
    origin: &Origin,
    need_tokenizer: bool,
    weights: Option<WeightFiles>,
    parsed: Option<ConfigJson>,
) -> Result<(ModelFiles, ConfigJson), HubError> {
    let config = dir.join(CONFIG);
    if !config.is_file() {
        return Err(origin.missing(dir, CONFIG, format!("missing {CONFIG}")));
    }
    let parsed = match parsed {
        Some(p) => p,
        None => ConfigJson::read(&config)?,
    };
    let arch = parsed.arch;
    let generation_config = Some(dir.join(GENERATION_CONFIG)).filter(|p| p.is_file());

    let mut tokenizer = TokenizerFiles::default();
    for name in TOKENIZER_FILES {
        let p = dir.join(name);
        if p.is_file() {
            if let Some(slot) = tokenizer.slot(name) {
                *slot = Some(p);
            }
        }
    }
    if let Some(detail) = check_tokenizer(arch, &tokenizer).filter(|_| need_tokenizer) {
        let file = first_missing_tokenizer_file(arch, &tokenizer);
        return Err(origin.missing(dir, file, detail));
    }

    if let Some(weights) = weights {
        let files = ModelFiles {
            config,
            generation_config,
            tokenizer,
            weights,
        };
        return Ok((files, parsed));
    }
    let names = list_files(dir)?;
    let weights = match choose_weights(&names) {
        Some(WeightChoice::Single(n)) => WeightFiles::Safetensors(dir.join(n)),
        Some(WeightChoice::Bin(n)) => WeightFiles::PytorchBin(dir.join(n)),
        Some(WeightChoice::Index(n)) => {
            let index = dir.join(n);
            let mut shards = Vec::new();
            for s in shard_names(&index)? {
                let p = dir.join(&s);
                if !p.is_file() {
                    return Err(origin.missing(
                        dir,
                        &s,
                        format!("missing shard {s} named in {SAFETENSORS_INDEX}"),
                    ));
                }
                shards.push(p);
            }
            WeightFiles::ShardedSafetensors { index, shards }
        }
        None => {
            return Err(origin.missing(
                dir,
                &format!("model weights ({SAFETENSORS}, {SAFETENSORS_INDEX} or {PYTORCH_BIN})"),
                no_weights_detail(&names),
            ))
        }
    };
    let files = ModelFiles {
        config,
        generation_config,
        tokenizer,
        weights,
    };
    Ok((files, parsed))
}

/// Regular files (or symlinks to existing files) directly in `dir`, by name. Broken
/// symlinks (a blob deleted from the cache) count as absent.
pub(crate) fn list_files(dir: &Path) -> Result<BTreeSet<String>, HubError> {
    let rd = std::fs::read_dir(dir).map_err(|e| HubError::io(dir, e))?;
    let mut out = BTreeSet::new();
    for entry in rd {
        let entry = entry.map_err(|e| HubError::io(dir, e))?;
        if entry.path().is_file() {
            if let Some(n) = entry.file_name().to_str() {
                out.insert(n.to_string());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn weight_preference() {
        assert_eq!(
            choose_weights(&names(&[
                "pytorch_model.bin",
                "model.safetensors",
                "model.safetensors.index.json"
            ])),
            Some(WeightChoice::Single(SAFETENSORS))
        );
        assert_eq!(
            choose_weights(&names(&[
                "pytorch_model.bin",
                "model.safetensors.index.json"
            ])),
            Some(WeightChoice::Index(SAFETENSORS_INDEX))
        );
        assert_eq!(
            choose_weights(&names(&["pytorch_model.bin", "tf_model.h5"])),
            Some(WeightChoice::Bin(PYTORCH_BIN))
        );
        let n = names(&["tf_model.h5", "pytorch_model.bin.index.json"]);
        assert_eq!(choose_weights(&n), None);
        let d = no_weights_detail(&n);
        assert!(
            d.contains("tf_model.h5") && d.contains("not supported"),
            "{d}"
        );
    }

    #[test]
    fn tokenizer_requirements() {
        let mut t = TokenizerFiles {
            source_spm: Some("s".into()),
            vocab_json: Some("v".into()),
            ..Default::default()
        };
        assert!(check_tokenizer(Arch::Marian, &t).is_some());
        t.target_spm = Some("t".into());
        assert!(check_tokenizer(Arch::Marian, &t).is_none());
        assert!(check_tokenizer(Arch::Bart, &t).is_some());
        let msg = check_tokenizer(Arch::T5, &t).unwrap();
        assert!(msg.contains("spiece.model"), "{msg}");
        let j = TokenizerFiles {
            tokenizer_json: Some("j".into()),
            ..Default::default()
        };
        for a in Arch::ALL {
            assert!(check_tokenizer(a, &j).is_none());
        }
    }

    #[test]
    fn shard_names_are_checked() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(SAFETENSORS_INDEX);
        std::fs::write(
            &p,
            r#"{"metadata":{},"weight_map":{"a":"m-1.safetensors","b":"m-2.safetensors","c":"m-1.safetensors"}}"#,
        )
        .unwrap();
        assert_eq!(
            shard_names(&p).unwrap(),
            vec!["m-1.safetensors", "m-2.safetensors"]
        );
        std::fs::write(&p, r#"{"weight_map":{"a":"../../etc/passwd"}}"#).unwrap();
        assert!(shard_names(&p).unwrap_err().to_string().contains("escapes"));
        std::fs::write(&p, r#"{"weight_map":{}}"#).unwrap();
        assert!(shard_names(&p).is_err());
        std::fs::write(&p, r#"not json"#).unwrap();
        assert!(shard_names(&p).unwrap_err().to_string().contains("JSON"));
    }

    #[test]
    fn local_dir_selection_and_errors() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        let e = select_on_disk_with(dir, &Origin::Local, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("config.json"), "{e}");
        std::fs::write(dir.join(CONFIG), r#"{"model_type":"bart"}"#).unwrap();
        let e = select_on_disk_with(dir, &Origin::Local, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("vocab.json + merges.txt"), "{e}");
        std::fs::write(dir.join("vocab.json"), "{}").unwrap();
        std::fs::write(dir.join("merges.txt"), "").unwrap();
        let e = select_on_disk_with(dir, &Origin::Local, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no usable weights"), "{e}");
        std::fs::write(dir.join(PYTORCH_BIN), "x").unwrap();
        let (f, _) = select_on_disk_with(dir, &Origin::Local, true).unwrap();
        assert_eq!(f.weights, WeightFiles::PytorchBin(dir.join(PYTORCH_BIN)));
        assert_eq!(f.paths().len(), 4);
        let e = select_on_disk_with(
            dir,
            &Origin::Cache {
                repo: "o/n".into(),
                revision: "main".into(),
                cache: "/c".into(),
                offline: true,
            },
            true,
        );
        assert!(e.is_ok());
        std::fs::remove_file(dir.join("merges.txt")).unwrap();
        let e = select_on_disk_with(
            dir,
            &Origin::Cache {
                repo: "o/n".into(),
                revision: "main".into(),
                cache: "/c".into(),
                offline: true,
            },
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("o/n@main") && e.contains("merges.txt") && e.contains("offline"),
            "{e}"
        );
    }
}
