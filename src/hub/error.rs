use std::path::PathBuf;

/// Everything that can go wrong finding, downloading or loading model files. Each message
/// names the repo/revision or the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The model name/spec itself is unusable.
    #[error("{0}")]
    Spec(String),

    /// Offline (or the network failed) and a needed file is not in the cache.
    #[error(
        "{repo}@{revision}: {file} is not in the local cache {}{}",
        .cache.display(),
        offline_hint(*.offline, .repo)
    )]
    NotCached {
        repo: String,
        revision: String,
        file: String,
        cache: PathBuf,
        offline: bool,
    },

    /// Talking to the Hub about the repo failed (file list, revision lookup).
    #[error("{repo}@{revision}: {detail}")]
    Repo {
        repo: String,
        revision: String,
        detail: String,
    },

    /// Downloading one file failed; no partial file is left in the snapshot.
    #[error("{repo}@{revision}: downloading {file}: {detail}")]
    Download {
        repo: String,
        revision: String,
        file: String,
        detail: String,
    },

    /// A file the model needs is absent (local dir or repo).
    #[error("{where_}: {detail}")]
    MissingFile { where_: String, detail: String },

    /// config.json / manifest names an architecture tomtat does not implement.
    #[error("{origin}: unsupported architecture `{found}`; supported: {supported}")]
    UnknownArchitecture {
        origin: String,
        found: String,
        supported: String,
    },

    /// A config / index / JSON file that cannot be used.
    #[error("{}: {detail}", .file.display())]
    BadFile { file: PathBuf, detail: String },

    /// A weights file that is truncated, corrupt or in an unsupported format.
    #[error("{}: cannot load weights: {detail}", .file.display())]
    Weights { file: PathBuf, detail: String },

    /// A manifest that cannot be read or is inconsistent.
    #[error("manifest {origin}: {detail}")]
    Manifest { origin: String, detail: String },

    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl HubError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        HubError::Io {
            path: path.into(),
            source,
        }
    }
}

fn offline_hint(offline: bool, repo: &str) -> String {
    if offline {
        format!(
            " and offline mode is on (HF_HUB_OFFLINE / --offline); run \
             `tomtat models download {repo}` with network access first"
        )
    } else {
        String::new()
    }
}
