//! Fetching a repo's files into the standard HF cache with hf-hub 0.4 (sync, ureq).
//!
//! hf-hub does the HTTP work and the cache layout (`blobs/<etag>`, `snapshots/<sha>/<file>`
//! symlinks, `refs/<revision>`, resumable `.part` files). We add what it lacks: the repo file
//! list decides which files to get, a cache check before any file request, offline mode,
//! retries that resume the partial file, a size check after each file (so a short body never
//! lands in a snapshot) and error messages naming repo, revision and file.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::api::Progress;
use hf_hub::{Cache, Repo, RepoType};
use indicatif::ProgressBar;
use serde::Deserialize;

use super::config::ConfigJson;
use super::files::{
    check_tokenizer, choose_weights, is_safe_relative, no_weights_detail, select_on_disk_full,
    shard_names, Origin, TokenizerFiles, WeightChoice, WeightFiles, CONFIG, GENERATION_CONFIG,
    SAFETENSORS, TOKENIZER_FILES,
};
use super::{repo_cache_dir, FetchedFile, HubError, HubOptions, ModelDir};

/// `<repo>@<revision>` -> the model dir, downloading what the cache lacks unless offline.
pub(crate) fn fetch(
    repo: &str,
    revision: &str,
    opts: &HubOptions,
) -> Result<(ModelDir, Vec<FetchedFile>), HubError> {
    fetch_with(repo, revision, opts, None)
}

/// [`fetch`], taking the weights from `safetensors_revision`'s `model.safetensors` when
/// that revision has one (downloaded, or cached); else the revision's own weights.
pub(crate) fn fetch_preferring_safetensors(
    repo: &str,
    revision: &str,
    safetensors_revision: &str,
    opts: &HubOptions,
) -> Result<(ModelDir, Vec<FetchedFile>), HubError> {
    match safetensors_at(repo, safetensors_revision, opts) {
        Ok(st) => {
            let (dir, mut report) = fetch_with(
                repo,
                revision,
                opts,
                Some(WeightFiles::Safetensors(st.path.clone())),
            )?;
            report.push(st);
            Ok((dir, report))
        }
        Err(why) => {
            tracing::info!(
                "{repo}@{safetensors_revision}: no model.safetensors ({why}); using \
                 {revision}'s own weights"
            );
            fetch_with(repo, revision, opts, None)
        }
    }
}

/// `model.safetensors` of `repo@revision`, from the cache or downloaded.
fn safetensors_at(repo: &str, revision: &str, opts: &HubOptions) -> Result<FetchedFile, String> {
    if let Some((_, snap)) = cached_commit(&opts.cache_dir, repo, revision) {
        let p = snap.join(SAFETENSORS);
        if p.is_file() {
            return Ok(report_entry(&snap, &p, true));
        }
    }
    if opts.offline {
        return Err("offline and not cached".into());
    }
    let f = Fetcher::new(repo, revision, opts).map_err(|e| e.to_string())?;
    let listing = f.listing().map_err(|fail| fail.detail)?;
    if !listing.siblings.iter().any(|s| s.rfilename == SAFETENSORS) {
        return Err(format!("the revision has no {SAFETENSORS}"));
    }
    let got = f
        .download(SAFETENSORS, &listing.sha)
        .map_err(|e| e.to_string())?;
    super::validate_safetensors(&got.path).map_err(|e| e.to_string())?;
    f.create_ref(&listing.sha).map_err(|e| e.to_string())?;
    Ok(got)
}

/// `weights`: use these instead of the revision's own (nor download those).
fn fetch_with(
    repo: &str,
    revision: &str,
    opts: &HubOptions,
    weights: Option<WeightFiles>,
) -> Result<(ModelDir, Vec<FetchedFile>), HubError> {
    if opts.offline {
        return from_cache(repo, revision, opts, true, weights);
    }
    // Content at a commit sha never changes: a complete cached snapshot needs no network.
    if is_commit_sha(revision) {
        if let Ok(hit) = from_cache(repo, revision, opts, false, weights.clone()) {
            return Ok(hit);
        }
    }
    let f = Fetcher::new(repo, revision, opts)?;
    match f.listing() {
        Ok(listing) => f.fetch_all(listing, weights),
        Err(fail) if fail.network => match from_cache(repo, revision, opts, false, weights) {
            // As huggingface_hub does: Hub unreachable but the cache has it all -> use it.
            Ok(hit) => {
                tracing::warn!(
                    "{repo}@{revision}: Hub unreachable ({}); using the cached snapshot",
                    fail.detail
                );
                Ok(hit)
            }
            Err(_) => Err(f.repo_error(fail)),
        },
        Err(fail) => Err(f.repo_error(fail)),
    }
}

/// Only the cache: `refs/<revision>` (or a sha) -> snapshot dir -> the model's files.
fn from_cache(
    repo: &str,
    revision: &str,
    opts: &HubOptions,
    offline: bool,
    weights: Option<WeightFiles>,
) -> Result<(ModelDir, Vec<FetchedFile>), HubError> {
    let origin = Origin::Cache {
        repo: repo.to_string(),
        revision: revision.to_string(),
        cache: opts.cache_dir.clone(),
        offline,
    };
    let Some((commit, snap)) = cached_commit(&opts.cache_dir, repo, revision) else {
        return Err(HubError::NotCached {
            repo: repo.to_string(),
            revision: revision.to_string(),
            file: CONFIG.to_string(),
            cache: opts.cache_dir.clone(),
            offline,
        });
    };
    let (files, config) = select_on_disk_full(&snap, &origin, true, weights, None)?;
    let report = files
        .paths()
        .into_iter()
        .map(|p| report_entry(&snap, p, true))
        .collect();
    Ok((
        ModelDir {
            root: snap,
            repo: Some(repo.to_string()),
            revision: Some(revision.to_string()),
            commit: Some(commit),
            files,
            config,
        },
        report,
    ))
}

/// The commit a revision points at in the cache, and its snapshot dir (if it exists).
pub(crate) fn cached_commit(cache: &Path, repo: &str, revision: &str) -> Option<(String, PathBuf)> {
    let dir = repo_cache_dir(cache, repo);
    let snapshots = dir.join("snapshots");
    if is_commit_sha(revision) && snapshots.join(revision).is_dir() {
        return Some((revision.to_string(), snapshots.join(revision)));
    }
    if !is_safe_relative(revision) {
        return None;
    }
    let sha = std::fs::read_to_string(dir.join("refs").join(revision)).ok()?;
    let sha = sha.trim();
    if !is_safe_relative(sha) || sha.contains('/') {
        return None;
    }
    let snap = snapshots.join(sha);
    snap.is_dir().then(|| (sha.to_string(), snap))
}

fn is_commit_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn report_entry(root: &Path, p: &Path, cached: bool) -> FetchedFile {
    FetchedFile {
        name: p
            .strip_prefix(root)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned(),
        path: p.to_path_buf(),
        size: std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
        cached,
    }
}

/// The Hub's answer to `GET /api/models/<repo>/revision/<rev>?blobs=true` (the fields we use).
#[derive(Debug, Deserialize)]
struct Listing {
    sha: String,
    siblings: Vec<Sibling>,
}

#[derive(Debug, Deserialize)]
struct Sibling {
    rfilename: String,
}

/// A failed request, classified.
#[derive(Debug)]
struct Failure {
    /// Worth trying again (network, 5xx, 429, short body).
    retryable: bool,
    /// The server could not be reached at all (fall back to the cache).
    network: bool,
    detail: String,
}

struct Fetcher<'a> {
    repo: &'a str,
    revision: &'a str,
    opts: &'a HubOptions,
    api: ApiRepo,
}

impl<'a> Fetcher<'a> {
    fn new(repo: &'a str, revision: &'a str, opts: &'a HubOptions) -> Result<Self, HubError> {
        let api = ApiBuilder::from_cache(Cache::new(opts.cache_dir.clone()))
            .with_endpoint(opts.endpoint.clone())
            .with_token(opts.token.clone())
            // Our own tracker draws the bars and our loop retries (resuming the .part file).
            .with_progress(false)
            .with_retries(0)
            .with_user_agent("tomtat", env!("CARGO_PKG_VERSION"))
            .build()
            .map_err(|e| HubError::Repo {
                repo: repo.to_string(),
                revision: revision.to_string(),
                detail: format!("cannot set up the HTTP client: {e}"),
            })?;
        let api = api.repo(Repo::with_revision(
            repo.to_string(),
            RepoType::Model,
            revision.to_string(),
        ));
        Ok(Fetcher {
            repo,
            revision,
            opts,
            api,
        })
    }

    fn repo_error(&self, fail: Failure) -> HubError {
        HubError::Repo {
            repo: self.repo.to_string(),
            revision: self.revision.to_string(),
            detail: fail.detail,
        }
    }

    fn missing(&self, detail: String) -> HubError {
        HubError::MissingFile {
            where_: format!("{}@{}", self.repo, self.revision),
            detail,
        }
    }

    /// The commit sha the revision resolves to and the repo's file names.
    fn listing(&self) -> Result<Listing, Failure> {
        let resp = self
            .api
            .info_request()
            .query("blobs", "true")
            .call()
            .map_err(|e| ureq_failure(e, &self.opts.endpoint))?;
        let listing: Listing =
            serde_json::from_reader(resp.into_reader()).map_err(|e| Failure {
                retryable: false,
                network: false,
                detail: format!(
                    "unexpected reply from {} listing the repo: {e}",
                    self.opts.endpoint
                ),
            })?;
        if !is_safe_relative(&listing.sha) || listing.sha.contains('/') {
            return Err(Failure {
                retryable: false,
                network: false,
                detail: format!("the Hub returned an invalid commit `{}`", listing.sha),
            });
        }
        Ok(listing)
    }

    fn snapshot_dir(&self, commit: &str) -> PathBuf {
        repo_cache_dir(&self.opts.cache_dir, self.repo)
            .join("snapshots")
            .join(commit)
    }

    fn fetch_all(
        &self,
        listing: Listing,
        weights_given: Option<WeightFiles>,
    ) -> Result<(ModelDir, Vec<FetchedFile>), HubError> {
        let commit = listing.sha.as_str();
        let names: BTreeSet<String> = listing.siblings.into_iter().map(|s| s.rfilename).collect();
        let mut report = Vec::new();

        // config.json first: an unsupported architecture fails before any big download.
        if !names.contains(CONFIG) {
            return Err(self.missing(format!(
                "the repo has no {CONFIG}: not a transformers model"
            )));
        }
        let cfg = self.download(CONFIG, commit)?;
        let config = ConfigJson::read(&cfg.path)?;
        let arch = config.arch;
        report.push(cfg);

        let mut tok = TokenizerFiles::default();
        let tok_names: Vec<&str> = TOKENIZER_FILES
            .into_iter()
            .filter(|n| names.contains(*n))
            .collect();
        for n in &tok_names {
            if let Some(slot) = tok.slot(n) {
                *slot = Some(PathBuf::from(n));
            }
        }
        if let Some(detail) = check_tokenizer(arch, &tok) {
            return Err(self.missing(format!("the repo has {detail}")));
        }
        // Weights given from elsewhere: none of this revision's are needed.
        let weights = match (&weights_given, choose_weights(&names)) {
            (Some(_), _) => None,
            (None, Some(w)) => Some(w),
            (None, None) => {
                return Err(self.missing(format!(
                    "{}; some repos have safetensors only on a PR branch: try {}@refs/pr/N",
                    no_weights_detail(&names),
                    self.repo
                )))
            }
        };

        if names.contains(GENERATION_CONFIG) {
            report.push(self.download(GENERATION_CONFIG, commit)?);
        }
        for n in tok_names {
            report.push(self.download(n, commit)?);
        }
        match weights {
            None => {}
            Some(WeightChoice::Single(n) | WeightChoice::Bin(n)) => {
                report.push(self.download(n, commit)?);
            }
            Some(WeightChoice::Index(n)) => {
                let index = self.download(n, commit)?;
                let shards = shard_names(&index.path)?;
                report.push(index);
                for s in shards {
                    if !names.contains(&s) {
                        return Err(self.missing(format!(
                            "{n} names shard {s}, which the repo does not have"
                        )));
                    }
                    report.push(self.download(&s, commit)?);
                }
            }
        }

        // hf-hub writes refs/<revision> when it downloads; also when everything was cached.
        self.create_ref(commit)?;

        let snap = self.snapshot_dir(commit);
        let origin = Origin::Cache {
            repo: self.repo.to_string(),
            revision: self.revision.to_string(),
            cache: self.opts.cache_dir.clone(),
            offline: false,
        };
        let (files, config) =
            select_on_disk_full(&snap, &origin, true, weights_given, Some(config))?;
        Ok((
            ModelDir {
                root: snap,
                repo: Some(self.repo.to_string()),
                revision: Some(self.revision.to_string()),
                commit: Some(commit.to_string()),
                files,
                config,
            },
            report,
        ))
    }

    /// `refs/<revision>` -> `commit` in the cache.
    fn create_ref(&self, commit: &str) -> Result<(), HubError> {
        Cache::new(self.opts.cache_dir.clone())
            .repo(Repo::with_revision(
                self.repo.to_string(),
                RepoType::Model,
                self.revision.to_string(),
            ))
            .create_ref(commit)
            .map_err(|e| {
                HubError::io(
                    repo_cache_dir(&self.opts.cache_dir, self.repo).join("refs"),
                    e,
                )
            })
    }

    fn download_error(&self, file: &str, detail: String) -> HubError {
        HubError::Download {
            repo: self.repo.to_string(),
            revision: self.revision.to_string(),
            file: file.to_string(),
            detail,
        }
    }

    /// One file into `snapshots/<commit>/<file>`: a cache hit costs no request; otherwise
    /// hf-hub downloads it (resuming a `.part` left by an earlier try) and we check its size.
    fn download(&self, file: &str, commit: &str) -> Result<FetchedFile, HubError> {
        if !is_safe_relative(file) {
            return Err(self.download_error(file, "unsafe file name".into()));
        }
        let snap = self.snapshot_dir(commit);
        let target = snap.join(file);
        if target.is_file() {
            tracing::debug!("{}: cache hit", target.display());
            return Ok(report_entry(&snap, &target, true));
        }
        // A link to a blob someone deleted: hf-hub would fail to re-create it.
        if target.symlink_metadata().is_ok() {
            std::fs::remove_file(&target).map_err(|e| HubError::io(&target, e))?;
        }

        let mut wait = self.opts.retry_wait;
        let mut attempt = 0;
        loop {
            let tracker = Tracker::new(self.opts.progress);
            let failure = match self.api.download_with_progress(file, tracker.clone()) {
                Ok(path) => match self.verify(&path, &target, tracker.expected()) {
                    Ok(()) => return Ok(report_entry(&snap, &target, false)),
                    Err(f) => f,
                },
                Err(e) => api_failure(e, &self.opts.endpoint),
            };
            if !failure.retryable || attempt >= self.opts.retries {
                let tries = if attempt > 0 {
                    format!(" (after {} attempts)", attempt + 1)
                } else {
                    String::new()
                };
                // A partial blob stays as `.part` (never in the snapshot); hf-hub resumes it.
                let hint = if failure.network {
                    "; run again to resume"
                } else {
                    ""
                };
                return Err(self.download_error(file, format!("{}{tries}{hint}", failure.detail)));
            }
            attempt += 1;
            tracing::warn!(
                "{}@{}: {file}: {}; retry {attempt}/{} in {:?}",
                self.repo,
                self.revision,
                failure.detail,
                self.opts.retries,
                wait
            );
            std::thread::sleep(wait);
            wait = wait.saturating_mul(2);
        }
    }

    /// The file hf-hub put in the snapshot has the size the server announced, and sits in
    /// the snapshot of the commit we listed. A short file is taken out of the snapshot and
    /// its blob turned back into a `.part`, so the next try resumes it.
    fn verify(&self, got: &Path, target: &Path, expected: Option<usize>) -> Result<(), Failure> {
        let len = std::fs::metadata(got).map(|m| m.len()).unwrap_or(0);
        let Some(expected) = expected.map(|e| e as u64) else {
            return Ok(());
        };
        if len != expected {
            undo_short_file(got, len < expected);
            return Err(Failure {
                retryable: true,
                network: true,
                detail: format!(
                    "incomplete download: got {len} of {expected} bytes (the connection \
                     ended early)"
                ),
            });
        }
        if got != target {
            return Err(Failure {
                retryable: false,
                network: false,
                detail: format!(
                    "the revision moved while downloading (file is at {}, expected {}); run \
                     again",
                    got.display(),
                    target.display()
                ),
            });
        }
        Ok(())
    }
}

/// Removes a short/long file from the snapshot. If it was a link to a blob, the blob goes
/// back to `<blob>.part` (resumable) when short, or is deleted when too long.
fn undo_short_file(pointer: &Path, resumable: bool) {
    let is_link = pointer
        .symlink_metadata()
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false);
    if is_link {
        let blob = std::fs::canonicalize(pointer).ok();
        let _ = std::fs::remove_file(pointer);
        if let Some(blob) = blob {
            let mut part = blob.clone().into_os_string();
            part.push(".part");
            if resumable {
                let _ = std::fs::rename(&blob, PathBuf::from(part));
            } else {
                let _ = std::fs::remove_file(&blob);
            }
        }
    } else {
        let _ = std::fs::remove_file(pointer);
    }
}

fn api_failure(e: ApiError, endpoint: &str) -> Failure {
    match e {
        ApiError::RequestError(e) => ureq_failure(*e, endpoint),
        ApiError::IoError(e) => Failure {
            retryable: true,
            network: true,
            detail: format!("I/O error while downloading: {e}"),
        },
        ApiError::TooManyRetries(e) => api_failure(*e, endpoint),
        ApiError::LockAcquisition(p) => Failure {
            retryable: true,
            network: false,
            detail: format!(
                "another process holds the download lock {} (remove it if no download is \
                 running)",
                p.display()
            ),
        },
        ApiError::InvalidResume => Failure {
            retryable: false,
            network: false,
            detail: "a partial download (*.part in the cache's blobs dir) is larger than the \
                     file; delete it and run again"
                .into(),
        },
        e @ (ApiError::MissingHeader(_)
        | ApiError::InvalidHeader(_)
        | ApiError::ParseIntError(_)) => Failure {
            retryable: false,
            network: false,
            detail: format!("unexpected reply from {endpoint} (is it a Hugging Face Hub?): {e}"),
        },
    }
}

fn ureq_failure(e: ureq::Error, endpoint: &str) -> Failure {
    match e {
        ureq::Error::Status(code, resp) => {
            let hub_msg = resp
                .header("x-error-message")
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            let what = match code {
                401 => "repo not found, private or gated (set HF_TOKEN to a token with access)",
                403 => "access denied (gated model: accept its terms on the Hub, set HF_TOKEN)",
                404 => "not found (check the repo id, revision and file name)",
                429 => "rate limited by the Hub",
                500..=599 => "server error",
                _ => "request refused",
            };
            Failure {
                retryable: code == 429 || code >= 500,
                network: false,
                detail: format!("HTTP {code} from {endpoint}: {what}{hub_msg}"),
            }
        }
        ureq::Error::Transport(t) => Failure {
            retryable: true,
            network: true,
            detail: format!("cannot reach {endpoint}: {t}"),
        },
    }
}

/// Records the size the server announced and the bytes received; optionally draws a bar.
#[derive(Clone)]
struct Tracker {
    /// (announced size, bytes received); `None` until hf-hub calls `init`.
    state: Rc<Cell<Option<(usize, usize)>>>,
    bar: Option<ProgressBar>,
}

impl Tracker {
    fn new(progress: bool) -> Self {
        Tracker {
            state: Rc::new(Cell::new(None)),
            bar: progress.then(|| ProgressBar::new(0)),
        }
    }

    fn expected(&self) -> Option<usize> {
        self.state.get().map(|(size, _)| size)
    }
}

impl Progress for Tracker {
    fn init(&mut self, size: usize, filename: &str) {
        self.state.set(Some((size, 0)));
        if let Some(bar) = &mut self.bar {
            Progress::init(bar, size, filename);
        }
    }

    fn update(&mut self, n: usize) {
        if let Some((size, got)) = self.state.get() {
            self.state.set(Some((size, got.saturating_add(n))));
        }
        if let Some(bar) = &mut self.bar {
            Progress::update(bar, n);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = &mut self.bar {
            Progress::finish(bar);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_sha_detection() {
        assert!(is_commit_sha("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_commit_sha("main"));
        assert!(!is_commit_sha("0123456789abcdef0123456789abcdef0123456z"));
    }

    #[test]
    fn cached_commit_reads_refs() {
        let d = tempfile::tempdir().unwrap();
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let repo_dir = repo_cache_dir(d.path(), "o/n");
        assert!(cached_commit(d.path(), "o/n", "main").is_none());
        std::fs::create_dir_all(repo_dir.join("refs/refs/pr")).unwrap();
        std::fs::write(repo_dir.join("refs/main"), sha).unwrap();
        std::fs::write(repo_dir.join("refs/refs/pr/3"), format!("{sha}\n")).unwrap();
        // The ref exists but its snapshot does not.
        assert!(cached_commit(d.path(), "o/n", "main").is_none());
        std::fs::create_dir_all(repo_dir.join("snapshots").join(sha)).unwrap();
        assert_eq!(cached_commit(d.path(), "o/n", "main").unwrap().0, sha);
        assert_eq!(cached_commit(d.path(), "o/n", "refs/pr/3").unwrap().0, sha);
        assert_eq!(cached_commit(d.path(), "o/n", sha).unwrap().0, sha);
        std::fs::write(repo_dir.join("refs/evil"), "../../x").unwrap();
        assert!(cached_commit(d.path(), "o/n", "evil").is_none());
        assert!(cached_commit(d.path(), "o/n", "../refs/main").is_none());
    }

    #[test]
    fn tracker_counts_resumed_bytes() {
        let mut t = Tracker::new(false);
        assert_eq!(t.expected(), None);
        t.init(100, "f");
        t.init(100, "f");
        t.update(40);
        t.update(60);
        assert_eq!(t.expected(), Some(100));
        assert_eq!(t.state.get(), Some((100, 100)));
    }
}
