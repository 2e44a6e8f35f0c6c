use std::fmt;
use std::path::Path;

use super::{HubError, ModelDir};

/// The encoder-decoder families tomtat implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    Marian,
    Bart,
    MBart,
    /// T5, T5 v1.1 / flan-t5, mT5 (same blocks; config flags differ).
    T5,
}

impl Arch {
    pub const ALL: [Arch; 4] = [Arch::Marian, Arch::Bart, Arch::MBart, Arch::T5];

    /// The name used in manifests and config.json `model_type`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Marian => "marian",
            Arch::Bart => "bart",
            Arch::MBart => "mbart",
            Arch::T5 => "t5",
        }
    }

    /// From a manifest `architecture` or config.json `model_type` value.
    pub fn from_model_type(s: &str) -> Option<Arch> {
        match s.trim().to_ascii_lowercase().as_str() {
            "marian" => Some(Arch::Marian),
            "bart" => Some(Arch::Bart),
            "mbart" => Some(Arch::MBart),
            // mT5 (and ViT5, built on it) uses the T5 v1.1 blocks.
            "t5" | "mt5" => Some(Arch::T5),
            _ => None,
        }
    }

    /// From a config.json `architectures` entry (the transformers class name).
    pub fn from_class_name(s: &str) -> Option<Arch> {
        match s {
            "MarianMTModel" | "MarianModel" => Some(Arch::Marian),
            "BartForConditionalGeneration" | "BartModel" => Some(Arch::Bart),
            "MBartForConditionalGeneration" | "MBartModel" => Some(Arch::MBart),
            "T5ForConditionalGeneration"
            | "T5Model"
            | "MT5ForConditionalGeneration"
            | "MT5Model" => Some(Arch::T5),
            _ => None,
        }
    }

    pub fn supported_list() -> String {
        Arch::ALL.map(Arch::name).join(", ")
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The model's config.json as JSON.
pub fn read_config(dir: &ModelDir) -> Result<serde_json::Value, HubError> {
    read_json(&dir.files.config)
}

pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value, HubError> {
    let text = std::fs::read_to_string(path).map_err(|e| HubError::io(path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| HubError::BadFile {
        file: path.to_path_buf(),
        detail: format!("not valid JSON: {e}"),
    })?;
    if !v.is_object() {
        return Err(HubError::BadFile {
            file: path.to_path_buf(),
            detail: "expected a JSON object".into(),
        });
    }
    Ok(v)
}

/// The architecture config.json declares: `model_type`, else the `architectures` list.
pub fn architecture(dir: &ModelDir) -> Result<Arch, HubError> {
    let cfg = read_config(dir)?;
    arch_from_config(&cfg, &dir.files.config)
}

pub(crate) fn arch_from_config(cfg: &serde_json::Value, file: &Path) -> Result<Arch, HubError> {
    let model_type = cfg.get("model_type").and_then(|v| v.as_str());
    let classes: Vec<&str> = cfg
        .get("architectures")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    if let Some(a) = model_type.and_then(Arch::from_model_type) {
        return Ok(a);
    }
    if let Some(a) = classes.iter().find_map(|c| Arch::from_class_name(c)) {
        return Ok(a);
    }
    let found = match (model_type, classes.is_empty()) {
        (Some(t), true) => t.to_string(),
        (Some(t), false) => format!("{t} ({})", classes.join(", ")),
        (None, false) => classes.join(", "),
        (None, true) => {
            return Err(HubError::BadFile {
                file: file.to_path_buf(),
                detail: format!(
                    "neither `model_type` nor `architectures` is set; cannot tell the \
                     architecture (supported: {})",
                    Arch::supported_list()
                ),
            })
        }
    };
    Err(HubError::UnknownArchitecture {
        origin: file.display().to_string(),
        found,
        supported: Arch::supported_list(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn arch(v: serde_json::Value) -> Result<Arch, HubError> {
        arch_from_config(&v, Path::new("config.json"))
    }

    #[test]
    fn model_type_then_architectures() {
        assert_eq!(arch(json!({"model_type": "marian"})).unwrap(), Arch::Marian);
        assert_eq!(arch(json!({"model_type": "mt5"})).unwrap(), Arch::T5);
        assert_eq!(
            arch(json!({"architectures": ["MBartForConditionalGeneration"]})).unwrap(),
            Arch::MBart
        );
        assert_eq!(
            arch(json!({"model_type": "weird", "architectures": ["BartModel"]})).unwrap(),
            Arch::Bart
        );
    }

    #[test]
    fn unknown_architecture_names_it_and_supported() {
        let e = arch(json!({
            "model_type": "pegasus",
            "architectures": ["PegasusForConditionalGeneration"]
        }))
        .unwrap_err()
        .to_string();
        assert!(e.contains("pegasus"), "{e}");
        assert!(e.contains("PegasusForConditionalGeneration"), "{e}");
        assert!(e.contains("marian, bart, mbart, t5"), "{e}");
        let e = arch(json!({})).unwrap_err().to_string();
        assert!(e.contains("model_type"), "{e}");
    }
}
