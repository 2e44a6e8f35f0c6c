//! Tokenizers backed by the `tokenizers` crate: a `tokenizer.json` as is, and the pipelines
//! transformers 5.x builds for `T5Tokenizer` (from `spiece.model`) and `BartTokenizer`
//! (= `RobertaTokenizer`, from `vocab.json` + `merges.txt`). The pipelines are written as the
//! same tokenizer.json documents transformers' objects serialize to, so the behaviour is the
//! `tokenizers` library's own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::config::{clean_up_tokenization, HubConfig, SpecialToken};
use super::spm::SpmModel;
use super::TokenizeError;

#[derive(Debug)]
pub(crate) struct Hf {
    tok: tokenizers::Tokenizer,
    /// transformers skips `clean_up_tokenization` for BPE models.
    clean_up: bool,
}

fn tk_err(path: &Path, e: impl std::fmt::Display) -> TokenizeError {
    TokenizeError::Tokenizers {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn added(id: u32, t: &SpecialToken, special: bool) -> Value {
    json!({
        "id": id, "content": t.content, "single_word": false, "lstrip": t.lstrip,
        "rstrip": t.rstrip, "normalized": false, "special": special
    })
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (c.get(1).copied().unwrap_or(0) as u32) << 8
            | c.get(2).copied().unwrap_or(0) as u32;
        for (i, shift) in [18u32, 12, 6, 0].iter().enumerate() {
            if i <= c.len() {
                out.push(A[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Hf {
    fn from_value(v: Value, path: &Path, cfg: &HubConfig) -> Result<Self, TokenizeError> {
        let tok: tokenizers::Tokenizer = serde_json::from_value(v).map_err(|e| tk_err(path, e))?;
        Ok(Self::wrap(tok, cfg))
    }

    fn wrap(tok: tokenizers::Tokenizer, cfg: &HubConfig) -> Self {
        let is_bpe = matches!(tok.get_model(), tokenizers::ModelWrapper::BPE(_));
        let force = cfg
            .tokenizer_bool(
                "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output",
            )
            .unwrap_or(false);
        Hf {
            clean_up: cfg.clean_up_tokenization_spaces() && (!is_bpe || force),
            tok,
        }
    }

    /// A `tokenizer.json` file, as is.
    pub(crate) fn from_file(path: &Path, cfg: &HubConfig) -> Result<Self, TokenizeError> {
        let bytes = std::fs::read(path).map_err(|e| TokenizeError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let tok = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| tk_err(path, e))?;
        Ok(Self::wrap(tok, cfg))
    }

    /// transformers 5.x `T5Tokenizer` built from `spiece.model`: Unigram over the spm pieces
    /// plus `<extra_id_N>` (N descending) at the top, Precompiled normalizer,
    /// WhitespaceSplit + Metaspace, `</s>` appended.
    pub(crate) fn t5(spm: &SpmModel, path: &Path, cfg: &HubConfig) -> Result<Self, TokenizeError> {
        let extra_ids = cfg.tokenizer_usize("extra_ids").unwrap_or(100);
        let mut vocab: Vec<Value> = spm
            .pieces()
            .iter()
            .map(|p| json!([p.text, p.score as f64]))
            .collect();
        let mut index: HashMap<&str, u32> = spm
            .pieces()
            .iter()
            .enumerate()
            .map(|(i, p)| (p.text.as_str(), i as u32))
            .collect();
        let extra: Vec<String> = (0..extra_ids)
            .rev()
            .map(|i| format!("<extra_id_{i}>"))
            .collect();
        for t in &extra {
            index.entry(t.as_str()).or_insert(vocab.len() as u32);
            vocab.push(json!([t, 0.0]));
        }
        let mut next_id = vocab.len() as u32;
        let mut added_tokens = Vec::new();
        let mut specials: Vec<SpecialToken> = vec![
            cfg.special_or("pad_token", "<pad>"),
            cfg.special_or("eos_token", "</s>"),
            cfg.special_or("unk_token", "<unk>"),
        ];
        let extra_specials = extra.iter().rev().map(|e| SpecialToken {
            content: e.clone(),
            lstrip: false,
            rstrip: false,
        });
        specials.extend(extra_specials);
        specials.extend(cfg.additional_special_tokens());
        let mut seen = std::collections::HashSet::new();
        for t in specials {
            if !seen.insert(t.content.clone()) {
                continue;
            }
            let id = match index.get(t.content.as_str()) {
                Some(&id) => id,
                None => {
                    // Not in the model: transformers appends it after the vocabulary.
                    let id = next_id;
                    next_id += 1;
                    id
                }
            };
            added_tokens.push(added(id, &t, true));
        }
        let eos = cfg.special_or("eos_token", "</s>").content;
        let eos_id = index
            .get(eos.as_str())
            .copied()
            .ok_or_else(|| TokenizeError::Spm {
                path: path.to_path_buf(),
                reason: format!("eos token {eos:?} is not a piece of the model"),
            })?;
        let normalizer = match spm.charsmap_bytes() {
            Some(b) => json!({"type": "Precompiled", "precompiled_charsmap": base64(b)}),
            None => Value::Null,
        };
        let metaspace = json!({"type": "Metaspace", "replacement": "\u{2581}",
                               "prepend_scheme": "always", "split": true});
        let doc = json!({
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": added_tokens,
            "normalizer": normalizer,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "WhitespaceSplit"}, metaspace.clone()]},
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [{"Sequence": {"id": "A", "type_id": 0}},
                           {"SpecialToken": {"id": eos, "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": eos, "type_id": 0}},
                         {"Sequence": {"id": "B", "type_id": 0}},
                         {"SpecialToken": {"id": eos, "type_id": 0}}],
                "special_tokens": {eos.clone(): {"id": eos, "ids": [eos_id], "tokens": [eos]}}
            },
            "decoder": metaspace,
            "model": {"type": "Unigram", "unk_id": spm.unk_id(), "vocab": vocab,
                      "byte_fallback": false}
        });
        Self::from_value(doc, path, cfg)
    }

    /// transformers 5.x `BartTokenizer` (`RobertaTokenizer`): byte-level BPE,
    /// `<s> ... </s>`.
    pub(crate) fn bart(dir: &Path, cfg: &HubConfig) -> Result<Self, TokenizeError> {
        let vocab_path = dir.join("vocab.json");
        let merges_path = dir.join("merges.txt");
        let vocab = super::read_vocab_json(&vocab_path)?;
        let merges = read_merges(&merges_path, &vocab)?;
        let mut next_id = vocab.values().max().map_or(0, |m| m + 1);
        let mut added_tokens = Vec::new();
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut mask = cfg.special_or("mask_token", "<mask>");
        if cfg.special("mask_token").is_none() {
            mask.lstrip = true;
        }
        for t in [
            cfg.special_or("bos_token", "<s>"),
            cfg.special_or("pad_token", "<pad>"),
            cfg.special_or("eos_token", "</s>"),
            cfg.special_or("unk_token", "<unk>"),
            cfg.special_or("sep_token", "</s>"),
            cfg.special_or("cls_token", "<s>"),
            mask,
        ]
        .into_iter()
        .chain(cfg.additional_special_tokens())
        {
            if ids.contains_key(&t.content) {
                continue;
            }
            let id = match vocab.get(&t.content) {
                Some(&id) => id,
                None => {
                    let id = next_id;
                    next_id += 1;
                    id
                }
            };
            ids.insert(t.content.clone(), id);
            added_tokens.push(added(id, &t, true));
        }
        let sep = cfg.special_or("sep_token", "</s>").content;
        let cls = cfg.special_or("cls_token", "<s>").content;
        // Both were inserted above.
        let (sep_id, cls_id) = (ids.get(&sep).copied(), ids.get(&cls).copied());
        let add_prefix_space = cfg.tokenizer_bool("add_prefix_space").unwrap_or(false);
        let trim_offsets = cfg.tokenizer_bool("trim_offsets").unwrap_or(true);
        let doc = json!({
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": added_tokens,
            "normalizer": null,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": add_prefix_space,
                              "trim_offsets": true, "use_regex": true},
            "post_processor": {"type": "RobertaProcessing", "sep": [sep, sep_id],
                               "cls": [cls, cls_id], "trim_offsets": trim_offsets,
                               "add_prefix_space": add_prefix_space},
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                        "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                      "continuing_subword_prefix": "", "end_of_word_suffix": "",
                      "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": merges}
        });
        Self::from_value(doc, &vocab_path, cfg)
    }

    pub(crate) fn token_to_id(&self, token: &str) -> Option<u32> {
        self.tok.token_to_id(token)
    }

    pub(crate) fn id_to_token(&self, id: u32) -> Option<String> {
        self.tok.id_to_token(id)
    }

    pub(crate) fn vocab_size(&self) -> usize {
        self.tok.get_vocab_size(true)
    }

    pub(crate) fn is_special(&self, id: u32) -> bool {
        self.tok
            .get_added_vocabulary()
            .simple_id_to_token(id)
            .is_some_and(|t| self.tok.get_added_vocabulary().is_special_token(&t))
    }

    pub(crate) fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        self.tok
            .encode_fast(text, true)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| e.to_string())
    }

    pub(crate) fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, String> {
        let text = self
            .tok
            .decode(ids, skip_special)
            .map_err(|e| e.to_string())?;
        Ok(if self.clean_up {
            clean_up_tokenization(&text)
        } else {
            text
        })
    }
}

/// `merges.txt`: an optional `#version` line, then "left right" per line (tokenizers'
/// `BPE::read_file` rules), checked against the vocabulary.
fn read_merges(
    path: &PathBuf,
    vocab: &HashMap<String, u32>,
) -> Result<Vec<(String, String)>, TokenizeError> {
    let text = std::fs::read_to_string(path).map_err(|e| TokenizeError::Io {
        path: path.clone(),
        source: e,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("#version") {
            continue;
        }
        let parts: Vec<&str> = line.split(' ').collect();
        let bad = |reason: String| TokenizeError::Vocab {
            path: path.clone(),
            reason: format!("line {}: {reason}", i + 1),
        };
        if parts.len() != 2 {
            return Err(bad(format!("expected \"left right\", got {line:?}")));
        }
        for p in [parts[0], parts[1], &format!("{}{}", parts[0], parts[1])] {
            if !vocab.contains_key(p) {
                return Err(bad(format!("{p:?} is not in vocab.json")));
            }
        }
        out.push((parts[0].to_string(), parts[1].to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
