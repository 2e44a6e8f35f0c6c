//! Marian / opus-mt: `source.spm` + `target.spm` + `vocab.json`, with the semantics of
//! transformers' `MarianTokenizer` (5.x):
//! * encode: split the text on special tokens (`</s>`, `<unk>`, `<pad>`, additional ones);
//!   each other chunk loses a leading `>>xx<<` language code (kept as its own token), goes
//!   through the source spm as piece strings, and each piece maps through vocab.json
//!   (unknown piece -> `<unk>`); `</s>` is appended.
//! * decode: ids -> vocab tokens (skipping special ids when asked), runs of ordinary tokens
//!   through spm `DecodePieces`, special tokens verbatim followed by a space, `▁` -> space,
//!   Python `str.strip()`, then `clean_up_tokenization` if configured. With a joint vocab the
//!   *source* spm decodes (transformers 5.x `use_source_tokenizer` default); with
//!   `separate_vocabs` the target spm and `target_vocab.json`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::config::{clean_up_tokenization, py_strip, HubConfig};
use super::spm::SpmModel;
use super::{read_spm, read_vocab_json, TokenizeError};

#[derive(Debug)]
pub(crate) struct Marian {
    source: SpmModel,
    target: SpmModel,
    encoder: HashMap<String, u32>,
    /// id -> token for decoding (vocab.json, or target_vocab.json with separate vocabs).
    decoder: HashMap<u32, String>,
    separate_vocabs: bool,
    /// Special token strings, longest first (for splitting the input).
    specials: Vec<(String, u32)>,
    special_tokens: HashSet<String>,
    special_ids: HashSet<u32>,
    pub(crate) unk_id: u32,
    pub(crate) eos_id: u32,
    pub(crate) pad_id: u32,
    pub(crate) vocab_size: usize,
    clean_up: bool,
}

impl Marian {
    pub(crate) fn load(dir: &Path, cfg: &HubConfig) -> Result<Self, TokenizeError> {
        let source = read_spm(&dir.join("source.spm"))?;
        let target = read_spm(&dir.join("target.spm"))?;
        let vocab_path = dir.join("vocab.json");
        let encoder = read_vocab_json(&vocab_path)?;
        let separate_vocabs = cfg.tokenizer_bool("separate_vocabs").unwrap_or(false);
        let decoder: HashMap<u32, String> = if separate_vocabs {
            let p = dir.join("target_vocab.json");
            read_vocab_json(&p)?
                .into_iter()
                .map(|(k, v)| (v, k))
                .collect()
        } else {
            encoder.iter().map(|(k, &v)| (v, k.clone())).collect()
        };
        let lookup = |key: &str, default: &str| -> Result<(String, u32), TokenizeError> {
            let tok = cfg.special_or(key, default).content;
            match encoder.get(&tok) {
                Some(&id) => Ok((tok, id)),
                None => Err(TokenizeError::Vocab {
                    path: vocab_path.clone(),
                    reason: format!("{key} {tok:?} is not in the vocabulary"),
                }),
            }
        };
        let (unk, unk_id) = lookup("unk_token", "<unk>")?;
        let (eos, eos_id) = lookup("eos_token", "</s>")?;
        let (pad, pad_id) = lookup("pad_token", "<pad>")?;
        let mut specials = vec![(unk, unk_id), (eos, eos_id), (pad, pad_id)];
        for t in cfg.additional_special_tokens() {
            if let Some(&id) = encoder.get(&t.content) {
                specials.push((t.content, id));
            }
        }
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        specials.dedup();
        let special_tokens = specials.iter().map(|s| s.0.clone()).collect();
        let special_ids = specials.iter().map(|s| s.1).collect();
        let vocab_size = encoder.len();
        Ok(Marian {
            source,
            target,
            encoder,
            decoder,
            separate_vocabs,
            specials,
            special_tokens,
            special_ids,
            unk_id,
            eos_id,
            pad_id,
            vocab_size,
            clean_up: cfg.clean_up_tokenization_spaces(),
        })
    }

    /// Leftmost-longest special token at the start of `s`.
    fn special_at(&self, s: &str) -> Option<&(String, u32)> {
        self.specials
            .iter()
            .find(|(t, _)| s.starts_with(t.as_str()))
    }

    fn piece_id(&self, piece: &str) -> u32 {
        self.encoder.get(piece).copied().unwrap_or(self.unk_id)
    }

    /// Token strings for `text` (without the final `</s>`), like `tokenize()`.
    pub(crate) fn tokenize(&self, text: &str) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        let mut chunk_start = 0;
        let mut i = 0;
        while i < text.len() {
            if let Some((tok, id)) = self.special_at(&text[i..]) {
                self.tokenize_chunk(&text[chunk_start..i], &mut out);
                out.push((tok.clone(), *id));
                i += tok.len();
                chunk_start = i;
            } else {
                i += text[i..].chars().next().map_or(1, char::len_utf8);
            }
        }
        self.tokenize_chunk(&text[chunk_start..], &mut out);
        out
    }

    fn tokenize_chunk(&self, chunk: &str, out: &mut Vec<(String, u32)>) {
        if chunk.is_empty() {
            return;
        }
        let mut rest = chunk;
        // remove_language_code: a leading ">>xx<<" stays one token.
        if chunk.starts_with(">>") {
            if let Some(end) = chunk.find("<<") {
                let code = &chunk[..end + 2];
                out.push((code.to_string(), self.piece_id(code)));
                rest = &chunk[end + 2..];
            }
        }
        for (piece, _) in self.source.encode_pieces(rest) {
            let id = self.piece_id(&piece);
            out.push((piece, id));
        }
    }

    pub(crate) fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids: Vec<u32> = self.tokenize(text).into_iter().map(|t| t.1).collect();
        ids.push(self.eos_id);
        ids
    }

    fn decode_spm(&self) -> &SpmModel {
        if self.separate_vocabs {
            &self.target
        } else {
            &self.source
        }
    }

    /// `_convert_id_to_token`: the vocab, else the spm's own piece for that id.
    pub(crate) fn id_to_token(&self, id: u32) -> Option<&str> {
        self.decoder
            .get(&id)
            .map(String::as_str)
            .or_else(|| self.decode_spm().id_to_piece(id))
    }

    pub(crate) fn token_to_id(&self, token: &str) -> Option<u32> {
        self.encoder.get(token).copied()
    }

    pub(crate) fn is_special(&self, id: u32) -> bool {
        self.special_ids.contains(&id)
    }

    pub(crate) fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, u32> {
        let sp = self.decode_spm();
        let mut out = String::new();
        let mut run: Vec<&str> = Vec::new();
        for &id in ids {
            if skip_special && self.special_ids.contains(&id) {
                continue;
            }
            let tok = self.id_to_token(id).ok_or(id)?;
            if self.special_tokens.contains(tok) {
                out.push_str(&sp.decode_pieces(&run));
                out.push_str(tok);
                out.push(' ');
                run.clear();
            } else {
                run.push(tok);
            }
        }
        out.push_str(&sp.decode_pieces(&run));
        let out = out.replace(super::spm::SPACE_SYMBOL, " ");
        let out = py_strip(&out);
        Ok(if self.clean_up {
            clean_up_tokenization(out)
        } else {
            out.to_string()
        })
    }
}
