//! Finding and loading model files: Hugging Face Hub repos (downloaded into the standard HF
//! cache with hf-hub), local directories in the Hub's layout, and built-in or user-supplied
//! model manifests.
//!
//! Entry points: [`resolve`] (a user string -> manifest + [`ModelDir`]), [`load_weights`],
//! [`ModelDir::config`] (config.json, read once), [`builtin_manifests`].

mod config;
mod download;
mod error;
mod files;
mod legacy_pth;
mod manifest;
mod options;
mod weights;

use std::path::{Path, PathBuf};

pub use crate::model::Arch;
pub use config::ConfigJson;
pub use error::HubError;
pub use files::{ModelFiles, TokenizerFiles, WeightFiles};
pub use manifest::{
    builtin_manifest, builtin_manifests, GenerationDefaults, Manifest, Task, TokenizerKind,
};
pub use options::HubOptions;
pub use weights::{load_weights, validate_safetensors};

/// Default revision of a Hub repo.
pub const DEFAULT_REVISION: &str = "main";

/// What a user string names, before any manifest lookup: a local directory or a Hub repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// A directory on disk in the Hub's layout (config.json, tokenizer files, weights).
    Local(PathBuf),
    /// `owner/name[@revision]` on the Hub; revision is a commit sha, a branch, a tag or
    /// `refs/pr/N`.
    Hub {
        repo: String,
        revision: Option<String>,
    },
}

impl ModelRef {
    /// An existing directory wins (as in transformers' `from_pretrained`), else the string
    /// must be a valid Hub repo id with an optional `@revision`.
    pub fn parse(s: &str) -> Result<Self, HubError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(HubError::Spec("empty model name".into()));
        }
        let p = Path::new(s);
        if p.is_dir() {
            return Ok(ModelRef::Local(p.to_path_buf()));
        }
        let (repo, revision) = match s.split_once('@') {
            Some((r, rev)) => (r, Some(rev)),
            None => (s, None),
        };
        validate_repo_id(repo).map_err(|why| {
            HubError::Spec(format!(
                "`{s}` is not a local directory, a manifest (.toml) or a Hub repo id: {why}"
            ))
        })?;
        if let Some(rev) = revision {
            validate_revision(rev)
                .map_err(|why| HubError::Spec(format!("`{s}`: bad revision `{rev}`: {why}")))?;
        }
        Ok(ModelRef::Hub {
            repo: repo.to_string(),
            revision: revision.map(str::to_string),
        })
    }
}

/// Hub rules: `name` or `owner/name`, letters, digits, `-`, `_`, `.`; no `--` or `..`,
/// no leading/trailing `-` or `.`, at most 96 characters per part.
fn validate_repo_id(repo: &str) -> Result<(), String> {
    let parts: Vec<&str> = repo.split('/').collect();
    if parts.len() > 2 {
        return Err("a repo id has at most one `/` (owner/name)".into());
    }
    for part in parts {
        if part.is_empty() {
            return Err("empty owner or name".into());
        }
        if part.len() > 96 {
            return Err(format!("`{part}` is longer than 96 characters"));
        }
        if let Some(c) = part
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(format!("`{part}` contains `{c}`"));
        }
        if part.contains("--") || part.contains("..") {
            return Err(format!("`{part}` contains `--` or `..`"));
        }
        if part.starts_with(['-', '.']) || part.ends_with(['-', '.']) {
            return Err(format!("`{part}` starts or ends with `-` or `.`"));
        }
    }
    Ok(())
}

fn validate_revision(rev: &str) -> Result<(), String> {
    if rev.is_empty() {
        return Err("empty".into());
    }
    if rev.contains("..") || rev.starts_with('/') || rev.ends_with('/') {
        return Err("not a branch, tag, commit or refs/pr/N".into());
    }
    if let Some(c) = rev.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("contains {c:?}"));
    }
    Ok(())
}

/// A model's files on disk: a snapshot directory in the HF cache or a local directory.
#[derive(Debug, Clone)]
pub struct ModelDir {
    /// The snapshot dir (`.../models--owner--name/snapshots/<sha>`) or the local dir.
    pub root: PathBuf,
    /// Hub repo id; `None` for a local directory.
    pub repo: Option<String>,
    /// The revision asked for (branch, tag, `refs/pr/N` or sha); `None` for a local dir.
    pub revision: Option<String>,
    /// The commit sha the snapshot belongs to; `None` for a local dir.
    pub commit: Option<String>,
    /// The files the model needs, all under `root`.
    pub files: ModelFiles,
    /// `files.config`, read and parsed once when the directory was opened.
    pub config: ConfigJson,
}

impl ModelDir {
    /// A local directory in the Hub's layout: checks that config, tokenizer and weights
    /// files are there.
    pub fn open_local(dir: &Path) -> Result<Self, HubError> {
        Self::open_local_with(dir, true)
    }

    /// [`open_local`](Self::open_local) for running on token ids: tokenizer files may be
    /// missing.
    pub fn open_local_without_tokenizer(dir: &Path) -> Result<Self, HubError> {
        Self::open_local_with(dir, false)
    }

    fn open_local_with(dir: &Path, need_tokenizer: bool) -> Result<Self, HubError> {
        let (files, config) =
            files::select_on_disk_with(dir, &files::Origin::Local, need_tokenizer)?;
        Ok(ModelDir {
            root: dir.to_path_buf(),
            repo: None,
            revision: None,
            commit: None,
            files,
            config,
        })
    }

    /// `repo@revision` (or the directory) for messages.
    pub fn display_name(&self) -> String {
        match (&self.repo, &self.revision) {
            (Some(r), Some(rev)) => format!("{r}@{rev}"),
            (Some(r), None) => r.clone(),
            _ => self.root.display().to_string(),
        }
    }
}

/// One file of a model as fetched by [`resolve_with_report`].
#[derive(Debug, Clone)]
pub struct FetchedFile {
    /// Path inside the repo (`config.json`, `model.safetensors`, ...).
    pub name: String,
    /// Where it lies on disk now.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// True when it was already in the cache (or a local dir): nothing was downloaded.
    pub cached: bool,
}

/// Everything [`resolve_with_report`] found out.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub manifest: Option<Manifest>,
    pub dir: ModelDir,
    pub files: Vec<FetchedFile>,
}

/// Resolves what a user names into a manifest (if it names one) and a model directory,
/// downloading missing files unless offline. `spec` is, in this order of precedence: an
/// existing directory, a path to a manifest `.toml`, a built-in manifest name (optionally
/// `name@revision`), or a Hub repo id `owner/name[@revision]`. A Hub repo id equal to a
/// built-in manifest's repo also picks up that manifest (its generation defaults).
/// `opts.revision`, when set, overrides any revision in `spec` or the manifest.
pub fn resolve(spec: &str, opts: &HubOptions) -> Result<(Option<Manifest>, ModelDir), HubError> {
    let r = resolve_with_report(spec, opts)?;
    Ok((r.manifest, r.dir))
}

/// [`resolve`], also returning each file's size and whether it came from the cache.
pub fn resolve_with_report(spec: &str, opts: &HubOptions) -> Result<Resolved, HubError> {
    let (manifest, mref) = interpret(spec)?;
    let (dir, fetched) = match mref {
        ModelRef::Local(dir) => {
            let md = ModelDir::open_local(&dir)?;
            let fetched = local_report(&md);
            (md, fetched)
        }
        ModelRef::Hub { repo, revision } => {
            let revision = opts
                .revision
                .clone()
                .or(revision)
                .unwrap_or_else(|| DEFAULT_REVISION.to_string());
            // A known safetensors conversion of the pinned revision's weights (only when the
            // revision is the manifest's own: another one may hold other weights).
            let st_rev = manifest
                .as_ref()
                .filter(|m| m.revision == revision)
                .and_then(|m| m.safetensors_revision.as_deref());
            match st_rev {
                Some(st) => download::fetch_preferring_safetensors(&repo, &revision, st, opts)?,
                None => download::fetch(&repo, &revision, opts)?,
            }
        }
    };
    if let Some(m) = &manifest {
        check_manifest_matches(m, &dir)?;
    }
    Ok(Resolved {
        manifest,
        dir,
        files: fetched,
    })
}

/// Splits a spec into an optional manifest and what to fetch. No I/O beyond reading a
/// manifest file and checking whether a directory exists.
pub fn interpret(spec: &str) -> Result<(Option<Manifest>, ModelRef), HubError> {
    let spec = spec.trim();
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok((None, ModelRef::Local(path.to_path_buf())));
    }
    if spec.ends_with(".toml") {
        let m = Manifest::from_file(path)?;
        let mref = manifest_target(&m, path.parent())?;
        return Ok((Some(m), mref));
    }
    let (name, rev) = match spec.split_once('@') {
        Some((n, r)) => (n, Some(r)),
        None => (spec, None),
    };
    if let Some(m) = builtin_manifest(name) {
        let mref = match manifest_target(&m, None)? {
            ModelRef::Hub { repo, revision } => ModelRef::Hub {
                repo,
                revision: rev.map(str::to_string).or(revision),
            },
            local => local,
        };
        return Ok((Some(m), mref));
    }
    let mref = ModelRef::parse(spec).map_err(|e| match e {
        HubError::Spec(msg) => HubError::Spec(format!(
            "{msg}\nbuilt-in models: {}",
            builtin_manifests()
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        other => other,
    })?;
    // A repo id that a built-in manifest describes gets the manifest's defaults, but keeps
    // the revision the user asked for (or main).
    let manifest = match &mref {
        ModelRef::Hub { repo, .. } => builtin_manifests().into_iter().find(|m| &m.repo == repo),
        ModelRef::Local(_) => None,
    };
    let mref = match (mref, &manifest) {
        (ModelRef::Hub { repo, revision }, Some(m)) => ModelRef::Hub {
            repo,
            revision: revision.or_else(|| Some(m.revision.clone())),
        },
        (mref, _) => mref,
    };
    Ok((manifest, mref))
}

/// The manifest's `repo` is a Hub id or a local directory (relative to the manifest file).
fn manifest_target(m: &Manifest, base: Option<&Path>) -> Result<ModelRef, HubError> {
    let candidate = match base {
        Some(b) if Path::new(&m.repo).is_relative() => b.join(&m.repo),
        _ => PathBuf::from(&m.repo),
    };
    if candidate.is_dir() {
        return Ok(ModelRef::Local(candidate));
    }
    validate_repo_id(&m.repo).map_err(|why| HubError::Manifest {
        origin: m.origin.clone(),
        detail: format!(
            "repo `{}` is neither a directory nor a Hub repo id: {why}",
            m.repo
        ),
    })?;
    Ok(ModelRef::Hub {
        repo: m.repo.clone(),
        revision: Some(m.revision.clone()),
    })
}

fn check_manifest_matches(m: &Manifest, dir: &ModelDir) -> Result<(), HubError> {
    let want = m.arch()?;
    let got = dir.config.arch;
    if want != got {
        return Err(HubError::Manifest {
            origin: m.origin.clone(),
            detail: format!(
                "says architecture {want} but {} has {got}",
                dir.root.join("config.json").display()
            ),
        });
    }
    Ok(())
}

fn local_report(md: &ModelDir) -> Vec<FetchedFile> {
    md.files
        .paths()
        .into_iter()
        .map(|p| FetchedFile {
            name: p
                .strip_prefix(&md.root)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned(),
            size: std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            path: p.to_path_buf(),
            cached: true,
        })
        .collect()
}

/// Where the HF cache keeps a repo: `<cache>/models--owner--name`.
pub fn repo_cache_dir(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--")))
}

/// The cached snapshot of `repo@revision`, if the cache knows which commit the revision
/// points at and that snapshot directory exists. Never touches the network.
pub fn cached_snapshot(cache: &Path, repo: &str, revision: &str) -> Option<(String, PathBuf)> {
    download::cached_commit(cache, repo, revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repo_ids_and_revisions() {
        assert_eq!(
            ModelRef::parse("Helsinki-NLP/opus-mt-vi-en").unwrap(),
            ModelRef::Hub {
                repo: "Helsinki-NLP/opus-mt-vi-en".into(),
                revision: None
            }
        );
        assert_eq!(
            ModelRef::parse("google/flan-t5-base@refs/pr/12").unwrap(),
            ModelRef::Hub {
                repo: "google/flan-t5-base".into(),
                revision: Some("refs/pr/12".into())
            }
        );
        assert_eq!(
            ModelRef::parse("t5-small@a1b2c3").unwrap(),
            ModelRef::Hub {
                repo: "t5-small".into(),
                revision: Some("a1b2c3".into())
            }
        );
    }

    #[test]
    fn rejects_bad_repo_ids() {
        for bad in [
            "a/b/c",
            "owner//name",
            "own er/name",
            "-x/y",
            "x/y.",
            "a--b/c",
            "a/b@",
            "a/b@x y",
            "",
        ] {
            assert!(ModelRef::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn existing_directory_wins() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().to_str().unwrap();
        assert_eq!(
            ModelRef::parse(s).unwrap(),
            ModelRef::Local(d.path().to_path_buf())
        );
    }

    #[test]
    fn builtin_names_and_repo_ids_pick_up_manifests() {
        let (m, r) = interpret("opus-mt-vi-en").unwrap();
        let m = m.unwrap();
        assert_eq!(m.repo, "Helsinki-NLP/opus-mt-vi-en");
        assert_eq!(
            r,
            ModelRef::Hub {
                repo: m.repo.clone(),
                revision: Some(m.revision.clone())
            }
        );
        let (_, r) = interpret("opus-mt-vi-en@main").unwrap();
        assert!(matches!(r, ModelRef::Hub { revision: Some(ref v), .. } if v == "main"));
        let (m2, r2) = interpret("Helsinki-NLP/opus-mt-vi-en").unwrap();
        assert_eq!(m2.unwrap().name, "opus-mt-vi-en");
        assert!(matches!(r2, ModelRef::Hub { revision: Some(ref v), .. } if *v == m.revision));
        let (m3, _) = interpret("someone/unknown-model").unwrap();
        assert!(m3.is_none());
    }

    #[test]
    fn unknown_names_list_builtins() {
        let e = interpret("not a model").unwrap_err().to_string();
        assert!(e.contains("opus-mt-vi-en"), "{e}");
    }

    #[test]
    fn cache_dir_layout() {
        assert_eq!(
            repo_cache_dir(Path::new("/c"), "a/b"),
            PathBuf::from("/c/models--a--b")
        );
    }
}
