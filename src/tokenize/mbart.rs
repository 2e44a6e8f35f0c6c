//! mBART / mBART-50 from `sentencepiece.bpe.model` with the fairseq dictionary layout the
//! models were trained with: `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, spm piece i -> i + 1,
//! then the language codes, then `<mask>`.
//! * `MBartTokenizer`: source = pieces + `</s>` + src_lang code.
//! * `MBart50Tokenizer` (tokenizer_class): source = src_lang code + pieces + `</s>`.
//!
//! The input text is plain text for sentencepiece (fairseq preprocessing); it is not split
//! on special-token strings. transformers 5.x `MBartTokenizer` loaded from the `.model` file
//! alone re-models the BPE as a Unigram without the normalizer and disagrees with this on
//! most lines (see tests/tokenize_parity.rs).

use std::collections::HashMap;

use super::config::{py_strip, HubConfig};
use super::spm::SpmModel;

pub(crate) const FAIRSEQ_LANGUAGE_CODES: [&str; 25] = [
    "ar_AR", "cs_CZ", "de_DE", "en_XX", "es_XX", "et_EE", "fi_FI", "fr_XX", "gu_IN", "hi_IN",
    "it_IT", "ja_XX", "kk_KZ", "ko_KR", "lt_LT", "lv_LV", "my_MM", "ne_NP", "nl_XX", "ro_RO",
    "ru_RU", "si_LK", "tr_TR", "vi_VN", "zh_CN",
];

pub(crate) const MBART50_LANGUAGE_CODES: [&str; 52] = [
    "ar_AR", "cs_CZ", "de_DE", "en_XX", "es_XX", "et_EE", "fi_FI", "fr_XX", "gu_IN", "hi_IN",
    "it_IT", "ja_XX", "kk_KZ", "ko_KR", "lt_LT", "lv_LV", "my_MM", "ne_NP", "nl_XX", "ro_RO",
    "ru_RU", "si_LK", "tr_TR", "vi_VN", "zh_CN", "af_ZA", "az_AZ", "bn_IN", "fa_IR", "he_IL",
    "hr_HR", "id_ID", "ka_GE", "km_KH", "mk_MK", "ml_IN", "mn_MN", "mr_IN", "pl_PL", "ps_AF",
    "pt_XX", "sv_SE", "sw_KE", "ta_IN", "te_IN", "th_TH", "tl_XX", "uk_UA", "ur_PK", "xh_ZA",
    "gl_ES", "sl_SI",
];

const FAIRSEQ_SPECIALS: [&str; 4] = ["<s>", "<pad>", "</s>", "<unk>"];
const OFFSET: u32 = 1;

#[derive(Debug)]
pub(crate) struct Mbart {
    spm: SpmModel,
    /// Language code -> id.
    langs: HashMap<String, u32>,
    lang_names: Vec<String>,
    src_lang_id: u32,
    mask_id: u32,
    mbart50: bool,
    clean_up: bool,
}

impl Mbart {
    /// `Err` names the unknown source language.
    pub(crate) fn new(spm: SpmModel, cfg: &HubConfig) -> Result<Self, String> {
        let mbart50 = cfg
            .tokenizer_class()
            .is_some_and(|c| c.starts_with("MBart50"));
        let codes: &[&str] = if mbart50 {
            &MBART50_LANGUAGE_CODES
        } else {
            &FAIRSEQ_LANGUAGE_CODES
        };
        let n = spm.len() as u32;
        let langs: HashMap<String, u32> = codes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.to_string(), n + OFFSET + i as u32))
            .collect();
        let src = cfg.tokenizer_str("src_lang").unwrap_or("en_XX");
        let src_lang_id = *langs.get(src).ok_or_else(|| {
            format!("src_lang {src:?} is not one of the language codes {codes:?}")
        })?;
        Ok(Mbart {
            mask_id: n + OFFSET + codes.len() as u32,
            lang_names: codes.iter().map(|c| c.to_string()).collect(),
            spm,
            langs,
            src_lang_id,
            mbart50,
            clean_up: cfg.clean_up_tokenization_spaces(),
        })
    }

    pub(crate) fn vocab_size(&self) -> usize {
        self.mask_id as usize + 1
    }

    pub(crate) fn token_to_id(&self, token: &str) -> Option<u32> {
        if let Some(i) = FAIRSEQ_SPECIALS.iter().position(|&s| s == token) {
            return Some(i as u32);
        }
        if token == "<mask>" {
            return Some(self.mask_id);
        }
        if let Some(&id) = self.langs.get(token) {
            return Some(id);
        }
        let id = self.spm.piece_to_id(token);
        (self.spm.id_to_piece(id) == Some(token) && id != self.spm.unk_id()).then_some(id + OFFSET)
    }

    fn piece_to_fairseq(&self, piece: &str) -> u32 {
        if let Some(i) = FAIRSEQ_SPECIALS.iter().position(|&s| s == piece) {
            return i as u32;
        }
        match self.spm.piece_to_id(piece) {
            id if id == self.spm.unk_id() => 3,
            id => id + OFFSET,
        }
    }

    pub(crate) fn encode(&self, text: &str) -> Vec<u32> {
        let pieces = self.spm.encode_pieces(text);
        let mut ids = Vec::with_capacity(pieces.len() + 2);
        if self.mbart50 {
            ids.push(self.src_lang_id);
        }
        ids.extend(pieces.iter().map(|(p, _)| self.piece_to_fairseq(p)));
        ids.push(2);
        if !self.mbart50 {
            ids.push(self.src_lang_id);
        }
        ids
    }

    pub(crate) fn is_special(&self, id: u32) -> bool {
        id < 4 || id > self.spm.len() as u32
    }

    pub(crate) fn id_to_token(&self, id: u32) -> Option<&str> {
        let n = self.spm.len() as u32;
        match id {
            0..=3 => Some(FAIRSEQ_SPECIALS[id as usize]),
            _ if id <= n => self.spm.id_to_piece(id - OFFSET),
            _ if id == self.mask_id => Some("<mask>"),
            _ => self
                .lang_names
                .get((id - n - OFFSET) as usize)
                .map(String::as_str),
        }
    }

    /// Runs of spm pieces decode through sentencepiece; special tokens (when kept) are
    /// written verbatim followed by a space, as transformers' sentencepiece tokenizers do.
    pub(crate) fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, u32> {
        let mut out = String::new();
        let mut run: Vec<&str> = Vec::new();
        for &id in ids {
            let tok = self.id_to_token(id).ok_or(id)?;
            if self.is_special(id) {
                if skip_special {
                    continue;
                }
                out.push_str(&self.spm.decode_pieces(&run));
                out.push_str(tok);
                out.push(' ');
                run.clear();
            } else {
                run.push(tok);
            }
        }
        out.push_str(&self.spm.decode_pieces(&run));
        let out = if skip_special {
            out
        } else {
            py_strip(&out).to_string()
        };
        Ok(if self.clean_up {
            super::config::clean_up_tokenization(&out)
        } else {
            out
        })
    }
}
