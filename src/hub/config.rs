//! config.json as the hub layer reads it: once, when a model directory is opened.

use std::path::Path;

use crate::model::Arch;

use super::HubError;

/// A model's config.json, read and parsed once when its directory is opened (local, cache
/// or download): the JSON, which the loader turns into the typed
/// [`ModelConfig`](crate::model::ModelConfig) and keeps for the keys beyond the model's shape
/// (`prefix`, `tokenizer_class`, generation keys), and the architecture it declares.
#[derive(Debug, Clone)]
pub struct ConfigJson {
    pub json: serde_json::Value,
    /// `model_type`, else the `architectures` list.
    pub arch: Arch,
}

impl ConfigJson {
    /// Reads `path`; fails on bad JSON or an architecture tomtat does not implement.
    pub(crate) fn read(path: &Path) -> Result<Self, HubError> {
        let json = read_json(path)?;
        let arch = arch_from_config(&json, path)?;
        Ok(ConfigJson { json, arch })
    }
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
