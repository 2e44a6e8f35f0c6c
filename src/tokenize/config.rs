//! The Hub side files next to a tokenizer: `tokenizer_config.json`, `special_tokens_map.json`
//! and `config.json`. Only the keys tokenization needs are read; a missing file is fine, a
//! malformed one is an error naming the file.

use std::path::Path;

use serde_json::{Map, Value};

use super::TokenizeError;

/// A special token as written in the config files: a string or an `AddedToken` object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpecialToken {
    pub content: String,
    pub lstrip: bool,
    pub rstrip: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct HubConfig {
    tokenizer: Map<String, Value>,
    special_map: Map<String, Value>,
    model: Map<String, Value>,
}

fn read_object(path: &Path) -> Result<Map<String, Value>, TokenizeError> {
    if !path.is_file() {
        return Ok(Map::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| TokenizeError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(TokenizeError::Json {
            path: path.to_path_buf(),
            reason: "expected a JSON object".into(),
        }),
        Err(e) => Err(TokenizeError::Json {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

fn token_of(v: &Value) -> Option<SpecialToken> {
    match v {
        Value::String(s) => Some(SpecialToken {
            content: s.clone(),
            lstrip: false,
            rstrip: false,
        }),
        Value::Object(o) => Some(SpecialToken {
            content: o.get("content")?.as_str()?.to_string(),
            lstrip: o.get("lstrip").and_then(Value::as_bool).unwrap_or(false),
            rstrip: o.get("rstrip").and_then(Value::as_bool).unwrap_or(false),
        }),
        _ => None,
    }
}

impl HubConfig {
    /// The files in `dir`; `model`, when given, is `dir`'s `config.json` already read (a model
    /// load reads it once), so only the tokenizer's own files are read here.
    pub(crate) fn load_with(dir: &Path, model: Option<&Value>) -> Result<Self, TokenizeError> {
        let model = match model {
            None => read_object(&dir.join("config.json"))?,
            Some(Value::Object(m)) => m.clone(),
            Some(_) => {
                return Err(TokenizeError::Json {
                    path: dir.join("config.json"),
                    reason: "expected a JSON object".into(),
                })
            }
        };
        Ok(HubConfig {
            tokenizer: read_object(&dir.join("tokenizer_config.json"))?,
            special_map: read_object(&dir.join("special_tokens_map.json"))?,
            model,
        })
    }

    /// A `from_pretrained` keyword argument: wins over `tokenizer_config.json`.
    pub(crate) fn set_tokenizer_kwarg(&mut self, key: &str, value: &str) {
        self.tokenizer
            .insert(key.to_string(), Value::String(value.to_string()));
    }

    /// `tokenizer_config.json` value, falling back to `special_tokens_map.json`.
    fn tok_value(&self, key: &str) -> Option<&Value> {
        self.tokenizer
            .get(key)
            .filter(|v| !v.is_null())
            .or_else(|| self.special_map.get(key).filter(|v| !v.is_null()))
    }

    /// A named special token (`eos_token`, `pad_token`, ...), if configured.
    pub(crate) fn special(&self, key: &str) -> Option<SpecialToken> {
        self.tok_value(key).and_then(token_of)
    }

    /// A named special token's text, or `default`.
    pub(crate) fn special_or(&self, key: &str, default: &str) -> SpecialToken {
        self.special(key).unwrap_or(SpecialToken {
            content: default.to_string(),
            lstrip: false,
            rstrip: false,
        })
    }

    pub(crate) fn additional_special_tokens(&self) -> Vec<SpecialToken> {
        match self.tok_value("additional_special_tokens") {
            Some(Value::Array(a)) => a.iter().filter_map(token_of).collect(),
            _ => vec![],
        }
    }

    pub(crate) fn tokenizer_str(&self, key: &str) -> Option<&str> {
        self.tokenizer.get(key).and_then(Value::as_str)
    }

    pub(crate) fn tokenizer_bool(&self, key: &str) -> Option<bool> {
        self.tokenizer.get(key).and_then(Value::as_bool)
    }

    pub(crate) fn tokenizer_usize(&self, key: &str) -> Option<usize> {
        self.tokenizer
            .get(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
    }

    /// As AutoTokenizer: tokenizer_config.json's class, else config.json's.
    pub(crate) fn tokenizer_class(&self) -> Option<&str> {
        self.tokenizer_str("tokenizer_class")
            .or_else(|| self.model.get("tokenizer_class").and_then(Value::as_str))
    }

    /// An id from `config.json` (`pad_token_id`, `eos_token_id`, ...).
    pub(crate) fn model_id(&self, key: &str) -> Option<u32> {
        self.model
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    }

    /// transformers 5.x: `clean_up_tokenization_spaces` defaults to false.
    pub(crate) fn clean_up_tokenization_spaces(&self) -> bool {
        self.tokenizer_bool("clean_up_tokenization_spaces")
            .unwrap_or(false)
    }
}

/// `PreTrainedTokenizerBase.clean_up_tokenization`.
pub(crate) fn clean_up_tokenization(text: &str) -> String {
    text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

/// Python's `str.isspace` for one character (`str.strip()` with no argument).
pub(crate) fn py_isspace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\u{0B}'
            | '\u{0C}'
            | '\r'
            | '\u{1C}'..='\u{1F}'
            | ' '
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

/// Python's `str.strip()`.
pub(crate) fn py_strip(s: &str) -> &str {
    s.trim_matches(py_isspace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_strip() {
        assert_eq!(py_strip("\u{1F} a b\u{3000}\n"), "a b");
        assert_eq!(py_strip("\u{200B}x"), "\u{200B}x"); // zero width space is not whitespace
    }

    #[test]
    fn cleanup() {
        assert_eq!(
            clean_up_tokenization("Hi , it 's me . Yes !"),
            "Hi, it's me. Yes!"
        );
    }

    #[test]
    fn reads_tokens_and_ids() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("tokenizer_config.json"),
            r#"{"eos_token": "</s>", "mask_token": {"content": "<mask>", "lstrip": true}}"#,
        )
        .unwrap();
        std::fs::write(
            d.path().join("special_tokens_map.json"),
            r#"{"pad_token": "<pad>"}"#,
        )
        .unwrap();
        std::fs::write(d.path().join("config.json"), r#"{"pad_token_id": 7}"#).unwrap();
        let c = HubConfig::load_with(d.path(), None).unwrap();
        assert_eq!(c.special("eos_token").unwrap().content, "</s>");
        assert_eq!(c.special("pad_token").unwrap().content, "<pad>");
        assert!(c.special("mask_token").unwrap().lstrip);
        assert_eq!(c.model_id("pad_token_id"), Some(7));
        std::fs::write(d.path().join("config.json"), "{not json").unwrap();
        let e = HubConfig::load_with(d.path(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("config.json"), "{e}");
    }
}
