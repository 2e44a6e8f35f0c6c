use std::path::PathBuf;
use std::time::Duration;

/// Where and how to fetch models. [`HubOptions::from_env`] reads the same environment
/// variables as the Python `huggingface_hub` (hf-hub 0.4 reads only some of them).
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Hub base URL (`HF_ENDPOINT`, default `https://huggingface.co`).
    pub endpoint: String,
    /// The hub cache: `HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
    pub cache_dir: PathBuf,
    /// Bearer token (`HF_TOKEN`, else the token file `huggingface-cli login` writes).
    pub token: Option<String>,
    /// Never touch the network; use only the cache (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Overrides any revision in the model spec or manifest.
    pub revision: Option<String>,
    /// Progress bars on stderr while downloading.
    pub progress: bool,
    /// Extra attempts per file after a transient failure (network, 5xx, 429, short body).
    /// Each attempt resumes from the partial file.
    pub retries: usize,
    /// Wait before the first retry; doubled on each further retry.
    pub retry_wait: Duration,
}

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            cache_dir: default_hf_home().join("hub"),
            token: None,
            offline: false,
            revision: None,
            progress: true,
            retries: 3,
            retry_wait: Duration::from_millis(500),
        }
    }
}

impl HubOptions {
    /// Options from the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Same as [`from_env`](Self::from_env) with an explicit variable lookup (tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let hf_home = get("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            get("XDG_CACHE_HOME")
                .map(|x| PathBuf::from(x).join("huggingface"))
                .unwrap_or_else(default_hf_home)
        });
        let cache_dir = get("HF_HUB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let token = get("HF_TOKEN").map(|t| t.trim().to_string()).or_else(|| {
            let path = get("HF_TOKEN_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| hf_home.join("token"));
            std::fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        let offline = get("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v));
        let endpoint = get("HF_ENDPOINT")
            .map(|e| e.trim_end_matches('/').to_string())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let progress = !get("HF_HUB_DISABLE_PROGRESS_BARS").is_some_and(|v| truthy(&v));
        HubOptions {
            endpoint,
            cache_dir,
            token,
            offline,
            progress,
            ..Default::default()
        }
    }
}

/// `huggingface_hub` accepts these spellings for boolean variables.
fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

fn default_hf_home() -> PathBuf {
    match std::env::home_dir() {
        Some(h) => h.join(".cache").join("huggingface"),
        // No home directory at all (some containers): a cache under the temp dir still works.
        None => std::env::temp_dir().join("huggingface"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn opts(vars: &[(&str, &str)]) -> HubOptions {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubOptions::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn cache_dir_precedence() {
        assert_eq!(
            opts(&[("HF_HOME", "/h"), ("HF_HUB_CACHE", "/c")]).cache_dir,
            PathBuf::from("/c")
        );
        assert_eq!(
            opts(&[("HF_HOME", "/h")]).cache_dir,
            PathBuf::from("/h/hub")
        );
        assert_eq!(
            opts(&[("XDG_CACHE_HOME", "/x")]).cache_dir,
            PathBuf::from("/x/huggingface/hub")
        );
        assert!(opts(&[])
            .cache_dir
            .ends_with(PathBuf::from("huggingface").join("hub")));
    }

    #[test]
    fn offline_endpoint_token() {
        assert!(opts(&[("HF_HUB_OFFLINE", "1")]).offline);
        assert!(opts(&[("HF_HUB_OFFLINE", "True")]).offline);
        assert!(!opts(&[("HF_HUB_OFFLINE", "0")]).offline);
        assert!(!opts(&[]).offline);
        let o = opts(&[
            ("HF_ENDPOINT", "http://127.0.0.1:9/"),
            ("HF_TOKEN", " hf_x "),
            ("HF_HOME", "/nonexistent-tomtat"),
        ]);
        assert_eq!(o.endpoint, "http://127.0.0.1:9");
        assert_eq!(o.token.as_deref(), Some("hf_x"));
        assert_eq!(opts(&[("HF_HOME", "/nonexistent-tomtat")]).token, None);
    }

    #[test]
    fn token_file_under_hf_home() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("token"), "hf_file\n").unwrap();
        let o = opts(&[("HF_HOME", d.path().to_str().unwrap())]);
        assert_eq!(o.token.as_deref(), Some("hf_file"));
    }
}
