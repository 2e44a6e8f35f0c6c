//! Tokenizers for every supported model family, behind one [`Tokenizer`] type, with no
//! Python conversion step. [`Tokenizer::from_dir`] picks the kind from the files present:
//!
//! | kind             | files                                   | reference semantics |
//! |------------------|-----------------------------------------|---------------------|
//! | `tokenizer.json` | `tokenizer.json`                        | `tokenizers` as is |
//! | `marian`         | `source.spm` `target.spm` `vocab.json`  | transformers `MarianTokenizer` |
//! | `t5-spm`         | `spiece.model`                          | transformers `T5Tokenizer` |
//! | `mbart-spm`      | `sentencepiece.bpe.model`               | sentencepiece + fairseq dictionary (`MBartTokenizer` / `MBart50Tokenizer` layout) |
//! | `bart-bpe`       | `vocab.json` `merges.txt`               | transformers `BartTokenizer` |
//! | `spm`            | `tokenizer.model`, or one `*.model`/`*.spm` | `sentencepiece` `encode`/`decode` |
//!
//! SentencePiece files are parsed and run by our own port of the library (`spm`), which
//! matches `sentencepiece` exactly (normalization included); T5, BART and tokenizer.json go
//! through the `tokenizers` crate with the pipelines transformers builds. Special tokens come
//! from `tokenizer_config.json` / `special_tokens_map.json` / `config.json` where present.
//! Parity with the Python references is checked line by line in tests/tokenize_parity.rs.

mod charsmap;
mod config;
mod hf;
mod marian;
mod mbart;
mod spm;
mod trie;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use config::HubConfig;
use spm::SpmModel;

/// Everything that can go wrong loading or running a tokenizer. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    #[error(
        "{}: not a local model directory (only local directories are supported for now; \
         Hub model ids are not resolved yet)",
        path.display()
    )]
    NotADirectory { path: PathBuf },
    #[error("no tokenizer found in {}: looked for {looked_for}", dir.display())]
    NotFound { dir: PathBuf, looked_for: String },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: corrupt SentencePiece model: {reason}", path.display())]
    Spm { path: PathBuf, reason: String },
    #[error("{}: bad vocabulary: {reason}", path.display())]
    Vocab { path: PathBuf, reason: String },
    #[error("{}: invalid JSON: {reason}", path.display())]
    Json { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    Config { path: PathBuf, reason: String },
    #[error("{}: rejected by the tokenizers library: {reason}", path.display())]
    Tokenizers { path: PathBuf, reason: String },
    #[error("token id {id} is outside the vocabulary (size {vocab_size}) of the tokenizer in {}", dir.display())]
    IdOutOfRange {
        id: u32,
        vocab_size: usize,
        dir: PathBuf,
    },
    #[error("tokenizer in {}: {reason}", dir.display())]
    Encode { dir: PathBuf, reason: String },
}

/// Which loader a tokenizer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    TokenizerJson,
    Marian,
    T5Spm,
    MbartSpm,
    BartBpe,
    Spm,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::TokenizerJson => "tokenizer.json",
            Kind::Marian => "marian",
            Kind::T5Spm => "t5-spm",
            Kind::MbartSpm => "mbart-spm",
            Kind::BartBpe => "bart-bpe",
            Kind::Spm => "spm",
        }
    }
}

// Built once per tokenizer and shared behind an Arc: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Backend {
    Hf(Box<hf::Hf>),
    Marian(Box<marian::Marian>),
    Mbart(Box<mbart::Mbart>),
    Spm(Box<SpmModel>),
}

#[derive(Debug)]
struct Inner {
    kind: Kind,
    dir: PathBuf,
    backend: Backend,
    pad_id: u32,
    eos_id: u32,
    unk_id: u32,
    bos_id: Option<u32>,
    vocab_size: usize,
}

/// A loaded tokenizer. Cheap to clone (shared), `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: Arc<Inner>,
}

const LOOKED_FOR: &str = "tokenizer.json; source.spm + target.spm + vocab.json (Marian); \
spiece.model (T5); sentencepiece.bpe.model (mBART); vocab.json + merges.txt (BART); \
tokenizer.model or a single *.model / *.spm (SentencePiece)";

pub(crate) fn read_spm(path: &Path) -> Result<SpmModel, TokenizeError> {
    let bytes = std::fs::read(path).map_err(|e| TokenizeError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    SpmModel::from_bytes(&bytes).map_err(|reason| TokenizeError::Spm {
        path: path.to_path_buf(),
        reason,
    })
}

/// A `vocab.json`: a JSON object of token -> non-negative integer id.
pub(crate) fn read_vocab_json(path: &Path) -> Result<HashMap<String, u32>, TokenizeError> {
    let bad = |reason: String| TokenizeError::Vocab {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| TokenizeError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON ({e})")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad("expected a JSON object of token -> id".into()))?;
    if obj.is_empty() {
        return Err(bad("the vocabulary is empty".into()));
    }
    let mut out = HashMap::with_capacity(obj.len());
    for (k, v) in obj {
        let id = v
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| bad(format!("id of {k:?} is {v}, not a non-negative integer")))?;
        out.insert(k.clone(), id);
    }
    Ok(out)
}

fn lone_spm_file(dir: &Path) -> Result<Option<PathBuf>, TokenizeError> {
    let preferred = dir.join("tokenizer.model");
    if preferred.is_file() {
        return Ok(Some(preferred));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| TokenizeError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("model") | Some("spm")
                )
        })
        .collect();
    found.sort();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(TokenizeError::NotFound {
            dir: dir.to_path_buf(),
            looked_for: format!(
                "{LOOKED_FOR}; found several SentencePiece files and cannot choose: {}",
                found
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

impl Tokenizer {
    /// Loads the tokenizer in a local model directory (see the module docs for the order in
    /// which files are tried).
    pub fn from_dir(dir: &Path) -> Result<Self, TokenizeError> {
        Self::from_dir_with(dir, &[])
    }

    /// [`Tokenizer::from_dir`] with keyword arguments that override `tokenizer_config.json`,
    /// as `AutoTokenizer.from_pretrained(dir, src_lang="vi_VN")` does: repos that ship no
    /// tokenizer_config (vinai-translate) get their source language this way.
    pub fn from_dir_with(dir: &Path, kwargs: &[(&str, &str)]) -> Result<Self, TokenizeError> {
        Self::load(dir, kwargs, None)
    }

    /// [`Tokenizer::from_dir_with`] given the model's `config.json` (`model_config`) as the
    /// model load read it, so it is not read again.
    pub fn from_dir_with_config(
        dir: &Path,
        kwargs: &[(&str, &str)],
        model_config: &serde_json::Value,
    ) -> Result<Self, TokenizeError> {
        Self::load(dir, kwargs, Some(model_config))
    }

    fn load(
        dir: &Path,
        kwargs: &[(&str, &str)],
        model_config: Option<&serde_json::Value>,
    ) -> Result<Self, TokenizeError> {
        if !dir.is_dir() {
            return Err(TokenizeError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        let mut cfg = HubConfig::load_with(dir, model_config)?;
        for (k, v) in kwargs {
            cfg.set_tokenizer_kwarg(k, v);
        }
        let has = |f: &str| dir.join(f).is_file();
        let inner = if has("tokenizer.json") {
            Self::load_tokenizer_json(dir, &cfg)?
        } else if has("source.spm") && has("target.spm") && has("vocab.json") {
            let m = marian::Marian::load(dir, &cfg)?;
            Inner {
                kind: Kind::Marian,
                dir: dir.to_path_buf(),
                pad_id: m.pad_id,
                eos_id: m.eos_id,
                unk_id: m.unk_id,
                bos_id: None,
                vocab_size: m.vocab_size,
                backend: Backend::Marian(Box::new(m)),
            }
        } else if has("spiece.model") {
            let path = dir.join("spiece.model");
            let sp = read_spm(&path)?;
            let t = hf::Hf::t5(&sp, &path, &cfg)?;
            Self::hf_inner(Kind::T5Spm, dir, t, &cfg)?
        } else if has("sentencepiece.bpe.model") {
            let path = dir.join("sentencepiece.bpe.model");
            let sp = read_spm(&path)?;
            let m = mbart::Mbart::new(sp, &cfg).map_err(|reason| TokenizeError::Config {
                path: dir.join("tokenizer_config.json"),
                reason,
            })?;
            Inner {
                kind: Kind::MbartSpm,
                dir: dir.to_path_buf(),
                pad_id: 1,
                eos_id: 2,
                unk_id: 3,
                bos_id: Some(0),
                vocab_size: m.vocab_size(),
                backend: Backend::Mbart(Box::new(m)),
            }
        } else if has("vocab.json") && has("merges.txt") {
            let t = hf::Hf::bart(dir, &cfg)?;
            Self::hf_inner(Kind::BartBpe, dir, t, &cfg)?
        } else if let Some(path) = lone_spm_file(dir)? {
            return Self::from_spm_file(&path);
        } else {
            return Err(TokenizeError::NotFound {
                dir: dir.to_path_buf(),
                looked_for: LOOKED_FOR.to_string(),
            });
        };
        Ok(Tokenizer {
            inner: Arc::new(inner),
        })
    }

    /// A bare SentencePiece model (`kind() == "spm"`): `encode` is `sp.encode(text)` (no
    /// special tokens added), `decode` is `sp.decode(ids)`.
    pub fn from_spm_file(path: &Path) -> Result<Self, TokenizeError> {
        let sp = read_spm(path)?;
        let unk_id = sp.unk_id();
        let eos_id = sp.eos_id().unwrap_or(unk_id);
        let inner = Inner {
            kind: Kind::Spm,
            dir: path.to_path_buf(),
            pad_id: sp.pad_id().unwrap_or(eos_id),
            eos_id,
            unk_id,
            bos_id: sp.bos_id(),
            vocab_size: sp.len(),
            backend: Backend::Spm(Box::new(sp)),
        };
        Ok(Tokenizer {
            inner: Arc::new(inner),
        })
    }

    fn load_tokenizer_json(dir: &Path, cfg: &HubConfig) -> Result<Inner, TokenizeError> {
        let t = hf::Hf::from_file(&dir.join("tokenizer.json"), cfg)?;
        Self::hf_inner(Kind::TokenizerJson, dir, t, cfg)
    }

    /// Special ids of a `tokenizers`-backed tokenizer: configured token names first, then
    /// config.json ids, then the usual spellings.
    fn hf_inner(
        kind: Kind,
        dir: &Path,
        t: hf::Hf,
        cfg: &HubConfig,
    ) -> Result<Inner, TokenizeError> {
        let find = |key: &str, id_key: &str, fallbacks: &[&str]| -> Option<u32> {
            cfg.special(key)
                .and_then(|s| t.token_to_id(&s.content))
                .or_else(|| cfg.model_id(id_key))
                .or_else(|| fallbacks.iter().find_map(|f| t.token_to_id(f)))
        };
        let eos_id = find(
            "eos_token",
            "eos_token_id",
            &["</s>", "<|endoftext|>", "[SEP]"],
        )
        .ok_or_else(|| TokenizeError::Config {
            path: dir.to_path_buf(),
            reason: "cannot tell the end-of-sequence token (no eos_token in \
                         tokenizer_config.json / special_tokens_map.json, no eos_token_id in \
                         config.json, no </s> in the vocabulary)"
                .into(),
        })?;
        let pad_id = find("pad_token", "pad_token_id", &["<pad>", "[PAD]"]).unwrap_or(eos_id);
        let unk_id = find("unk_token", "unk_token_id", &["<unk>", "[UNK]"]).unwrap_or(eos_id);
        let bos_id = find("bos_token", "bos_token_id", &["<s>"]);
        Ok(Inner {
            kind,
            dir: dir.to_path_buf(),
            pad_id,
            eos_id,
            unk_id,
            bos_id,
            vocab_size: t.vocab_size(),
            backend: Backend::Hf(Box::new(t)),
        })
    }

    fn encode_err(&self, reason: String) -> TokenizeError {
        TokenizeError::Encode {
            dir: self.inner.dir.clone(),
            reason,
        }
    }

    fn out_of_range(&self, id: u32) -> TokenizeError {
        TokenizeError::IdOutOfRange {
            id,
            vocab_size: self.inner.vocab_size,
            dir: self.inner.dir.clone(),
        }
    }

    /// Token ids for `text` with the model's special tokens (e.g. `</s>`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizeError> {
        match &self.inner.backend {
            Backend::Hf(t) => t.encode(text).map_err(|e| self.encode_err(e)),
            Backend::Marian(m) => Ok(m.encode(text)),
            Backend::Mbart(m) => Ok(m.encode(text)),
            Backend::Spm(s) => Ok(s.encode_ids(text)),
        }
    }

    /// [`encode`](Self::encode) for many texts, in parallel (rayon), in order.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, TokenizeError> {
        texts.par_iter().map(|t| self.encode(t)).collect()
    }

    /// The vocabulary token of each id; ids outside the vocabulary give the unknown token's
    /// text.
    pub fn pieces(&self, ids: &[u32]) -> Vec<String> {
        let unk = self.id_to_token(self.inner.unk_id).unwrap_or_default();
        ids.iter()
            .map(|&id| self.id_to_token(id).unwrap_or_else(|| unk.clone()))
            .collect()
    }

    /// The vocabulary token for one id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        match &self.inner.backend {
            Backend::Hf(t) => t.id_to_token(id),
            Backend::Marian(m) => m.id_to_token(id).map(str::to_string),
            Backend::Mbart(m) => m.id_to_token(id).map(str::to_string),
            Backend::Spm(s) => s.id_to_piece(id).map(str::to_string),
        }
    }

    /// The id of a vocabulary token (e.g. a language code like `en_XX` or `>>vie<<`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        match &self.inner.backend {
            Backend::Hf(t) => t.token_to_id(token),
            Backend::Marian(m) => m.token_to_id(token),
            Backend::Mbart(m) => m.token_to_id(token),
            Backend::Spm(s) => {
                let id = s.piece_to_id(token);
                (s.id_to_piece(id) == Some(token)).then_some(id)
            }
        }
    }

    /// Whether `decode(.., skip_special = true)` drops this id.
    pub fn is_special(&self, id: u32) -> bool {
        match &self.inner.backend {
            Backend::Hf(t) => t.is_special(id),
            Backend::Marian(m) => m.is_special(id),
            Backend::Mbart(m) => m.is_special(id),
            Backend::Spm(s) => s.piece_type(id) == Some(sentencepiece_model::Type::Control),
        }
    }

    /// Text for `ids`, like the reference's `decode(ids, skip_special_tokens=skip_special)`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizeError> {
        match &self.inner.backend {
            Backend::Hf(t) => {
                // tokenizers silently drops unknown ids; we refuse them.
                if let Some(&bad) = ids.iter().find(|&&id| t.id_to_token(id).is_none()) {
                    return Err(self.out_of_range(bad));
                }
                t.decode(ids, skip_special).map_err(|e| self.encode_err(e))
            }
            Backend::Marian(m) => m
                .decode(ids, skip_special)
                .map_err(|id| self.out_of_range(id)),
            Backend::Mbart(m) => m
                .decode(ids, skip_special)
                .map_err(|id| self.out_of_range(id)),
            Backend::Spm(s) => match ids.iter().find(|&&id| s.id_to_piece(id).is_none()) {
                Some(&bad) => Err(self.out_of_range(bad)),
                None => Ok(s.decode_ids(ids).unwrap_or_default()),
            },
        }
    }

    /// [`decode`](Self::decode) for many sequences, in parallel, in order.
    pub fn decode_batch(
        &self,
        ids: &[Vec<u32>],
        skip_special: bool,
    ) -> Result<Vec<String>, TokenizeError> {
        ids.par_iter()
            .map(|x| self.decode(x, skip_special))
            .collect()
    }

    pub fn pad_id(&self) -> u32 {
        self.inner.pad_id
    }
    pub fn eos_id(&self) -> u32 {
        self.inner.eos_id
    }
    pub fn unk_id(&self) -> u32 {
        self.inner.unk_id
    }
    /// `<s>` where the family has one (BART, mBART, some tokenizer.json files).
    pub fn bos_id(&self) -> Option<u32> {
        self.inner.bos_id
    }
    /// Number of ids (`len(tokenizer)` in transformers, `len(vocab.json)` for Marian).
    pub fn vocab_size(&self) -> usize {
        self.inner.vocab_size
    }
    /// `"tokenizer.json" | "marian" | "t5-spm" | "mbart-spm" | "bart-bpe" | "spm"`.
    pub fn kind(&self) -> &'static str {
        self.inner.kind.as_str()
    }
    /// The directory (or, for a bare `.model`, the file) this tokenizer was loaded from.
    pub fn source(&self) -> &Path {
        &self.inner.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn tokenizer_is_send_sync() {
        assert_send_sync::<Tokenizer>();
    }

    #[test]
    fn missing_files_are_listed() {
        let d = tempfile::tempdir().unwrap();
        let e = Tokenizer::from_dir(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("spiece.model") && e.contains("merges.txt"),
            "{e}"
        );
        let e = Tokenizer::from_dir(&d.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a local model directory"), "{e}");
    }

    #[test]
    fn corrupt_spm_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("spiece.model"),
            b"\x08\x96\x01garbage bytes\xff",
        )
        .unwrap();
        let e = Tokenizer::from_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains("spiece.model") && e.contains("corrupt"), "{e}");
    }

    #[test]
    fn bad_vocab_json_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("vocab.json"), r#"{"a": -1}"#).unwrap();
        std::fs::write(d.path().join("merges.txt"), "#version: 0.2\n").unwrap();
        let e = Tokenizer::from_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains("vocab.json") && e.contains("\"a\""), "{e}");
        std::fs::write(d.path().join("vocab.json"), "[1, 2]").unwrap();
        let e = Tokenizer::from_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains("vocab.json"), "{e}");
    }
}
