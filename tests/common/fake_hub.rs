//! A fake Hugging Face Hub on 127.0.0.1: the endpoints and headers hf-hub 0.4's sync API
//! uses (repo info per revision, `resolve` with the commit and etag headers, LFS files
//! behind a 302 to a CDN path, range requests), several commits per repo, and injectable
//! failures (HTTP errors, dropped connections, short bodies). No network beyond loopback.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// The fake Hub.

/// What goes wrong on the next request(s) for a file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Answer any request for the file (metadata or data) with this HTTP status.
    Status(u16),
    /// Data request: announce the full length, send half the bytes, close.
    DropMidBody,
    /// Data request: no Content-Length, send half the bytes, close (looks complete).
    ShortNoLength,
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub path: String,
    pub range: Option<String>,
}

#[derive(Default)]
struct Repo {
    sha: String,
    /// Revision names (branch, refs/pr/N) that resolve to `sha`.
    revisions: Vec<String>,
    files: BTreeMap<String, Vec<u8>>,
}

impl Repo {
    fn names(&self, rev: &str) -> bool {
        rev == self.sha || self.revisions.iter().any(|r| r == rev)
    }
}

#[derive(Default)]
struct State {
    /// Repo id -> its commits (each with the revision names that resolve to it).
    repos: HashMap<String, Vec<Repo>>,
    faults: HashMap<String, Vec<Fault>>,
    log: Vec<Logged>,
}

pub struct FakeHub {
    pub url: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeHub {
    pub fn start() -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp, base) = (state.clone(), stop.clone(), url.clone());
        // Bounded: stops when the test drops it, or after 10 minutes whatever happens.
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(600);
            while !sp.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((s, _)) => handle(s, &st, &base),
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        FakeHub {
            url,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// Adds (or replaces) the commit `sha` of repo `id`, which `revisions` (branches,
    /// `refs/pr/N`) also name.
    pub fn add_repo(&self, id: &str, sha: &str, revisions: &[&str], files: &[(&str, Vec<u8>)]) {
        let mut st = self.state.lock().unwrap();
        let commits = st.repos.entry(id.to_string()).or_default();
        commits.retain(|r| r.sha != sha);
        for r in commits.iter_mut() {
            r.revisions.retain(|rev| !revisions.contains(&rev.as_str()));
        }
        commits.push(Repo {
            sha: sha.to_string(),
            revisions: revisions.iter().map(|s| s.to_string()).collect(),
            files: files
                .iter()
                .map(|(n, d)| (n.to_string(), d.clone()))
                .collect(),
        });
    }

    /// Serves the replica repos `tests/fixtures/replicas/hub.json` lists (written by
    /// scripts/make_replica_hub.py): per repo, revision names -> commit sha, and per commit
    /// the repo's file names -> paths under `fixtures`.
    pub fn add_replicas(&self, fixtures: &std::path::Path) {
        let text = std::fs::read_to_string(fixtures.join("replicas/hub.json")).unwrap();
        let hub: serde_json::Value = serde_json::from_str(&text).unwrap();
        for (repo, r) in hub.as_object().unwrap() {
            for (sha, files) in r["commits"].as_object().unwrap() {
                let revisions: Vec<&str> = r["revisions"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .filter(|(name, s)| s.as_str() == Some(sha) && *name != sha)
                    .map(|(name, _)| name.as_str())
                    .collect();
                let files: Vec<(&str, Vec<u8>)> = files
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(name, path)| {
                        let p = fixtures.join(path.as_str().unwrap());
                        let data =
                            std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                        (name.as_str(), data)
                    })
                    .collect();
                self.add_repo(repo, sha, &revisions, &files);
            }
        }
    }

    pub fn fail(&self, file: &str, faults: &[Fault]) {
        self.state
            .lock()
            .unwrap()
            .faults
            .insert(file.to_string(), faults.to_vec());
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// Requests that fetch file contents or metadata (not the repo listing).
    pub fn file_requests(&self) -> Vec<Logged> {
        self.log()
            .into_iter()
            .filter(|l| !l.path.starts_with("/api/"))
            .collect()
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn percent_decode(s: &str) -> String {
    s.replace("%2F", "/").replace("%2f", "/")
}

/// Content hash used as the ETag (the Hub uses the git blob sha1 or the LFS sha256; any
/// content-derived name works for hf-hub's blob layout).
fn etag(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}{:08x}", data.len())
}

/// Large files are stored in LFS on the Hub: `resolve` redirects to a CDN URL.
fn is_lfs(name: &str) -> bool {
    name.ends_with(".safetensors") || name.ends_with(".bin")
}

fn handle(mut stream: TcpStream, state: &Arc<Mutex<State>>, base: &str) {
    stream.set_nonblocking(false).ok();
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let path = target.split('?').next().unwrap_or("").to_string();
    let mut st = state.lock().unwrap();
    st.log.push(Logged {
        path: path.clone(),
        range: range.clone(),
    });

    // GET /api/models/{repo}/revision/{rev}: the file list and the commit sha.
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let Some((repo_id, rev)) = rest.split_once("/revision/") else {
            return respond(&mut stream, 400, &[], b"bad request");
        };
        let rev = percent_decode(rev);
        let Some(commits) = st.repos.get(repo_id) else {
            return respond(
                &mut stream,
                404,
                &[
                    ("X-Error-Code", "RepoNotFound".into()),
                    ("X-Error-Message", "Repository not found".into()),
                ],
                b"{}",
            );
        };
        let Some(repo) = commits.iter().find(|r| r.names(&rev)) else {
            return respond(
                &mut stream,
                404,
                &[
                    ("X-Error-Code", "RevisionNotFound".into()),
                    ("X-Error-Message", format!("Invalid rev id: {rev}")),
                ],
                b"{}",
            );
        };
        let siblings: Vec<serde_json::Value> = repo
            .files
            .iter()
            .map(|(n, d)| serde_json::json!({"rfilename": n, "size": d.len()}))
            .collect();
        let body = serde_json::json!({
            "id": repo_id, "modelId": repo_id, "sha": repo.sha, "siblings": siblings
        })
        .to_string();
        return respond(
            &mut stream,
            200,
            &[("Content-Type", "application/json".into())],
            body.as_bytes(),
        );
    }

    // GET /cdn/{etag}: LFS content behind the redirect.
    if let Some(tag) = path.strip_prefix("/cdn/") {
        let found = st
            .repos
            .values()
            .flatten()
            .flat_map(|r| r.files.iter())
            .find(|(_, d)| etag(d) == tag)
            .map(|(n, d)| (n.clone(), d.clone()));
        let Some((name, data)) = found else {
            return respond(&mut stream, 404, &[], b"no such blob");
        };
        return serve_bytes(&mut stream, &mut st, &name, &data, range.as_deref(), &[]);
    }

    // GET /{repo}/resolve/{rev}/{file}
    let Some((repo_id, rest)) = path.trim_start_matches('/').split_once("/resolve/") else {
        return respond(&mut stream, 404, &[], b"not found");
    };
    let Some((rev, file)) = rest.split_once('/') else {
        return respond(&mut stream, 404, &[], b"not found");
    };
    let rev = percent_decode(rev);
    let commit = st
        .repos
        .get(repo_id)
        .and_then(|c| c.iter().find(|r| r.names(&rev)));
    let (sha, data) = match commit {
        Some(r) => match r.files.get(file) {
            Some(d) => (r.sha.clone(), d.clone()),
            None => {
                return respond(
                    &mut stream,
                    404,
                    &[("X-Error-Code", "EntryNotFound".into())],
                    b"entry not found",
                )
            }
        },
        _ => {
            return respond(
                &mut stream,
                404,
                &[("X-Error-Code", "RepoNotFound".into())],
                b"",
            )
        }
    };
    if let Some(Fault::Status(code)) = take_fault(&mut st, file, false) {
        return respond(&mut stream, code, &[], b"injected failure");
    }
    let tag = etag(&data);
    if is_lfs(file) {
        // Like the Hub: 302 to the CDN, with the commit and the LFS etag on the redirect.
        return respond(
            &mut stream,
            302,
            &[
                ("Location", format!("{base}/cdn/{tag}")),
                ("X-Repo-Commit", sha),
                ("X-Linked-Etag", format!("\"{tag}\"")),
                ("X-Linked-Size", data.len().to_string()),
            ],
            b"",
        );
    }
    let extra = [("X-Repo-Commit", sha), ("ETag", format!("\"{tag}\""))];
    serve_bytes(&mut stream, &mut st, file, &data, range.as_deref(), &extra)
}

/// The next fault for `file`; data faults only fire on data requests (not `bytes=0-0`).
fn take_fault(st: &mut State, file: &str, data_request: bool) -> Option<Fault> {
    let q = st.faults.get_mut(file)?;
    let f = *q.first()?;
    let applies = match f {
        Fault::Status(_) => true,
        Fault::DropMidBody | Fault::ShortNoLength => data_request,
    };
    if applies {
        q.remove(0);
        Some(f)
    } else {
        None
    }
}

fn serve_bytes(
    stream: &mut TcpStream,
    st: &mut State,
    name: &str,
    data: &[u8],
    range: Option<&str>,
    extra: &[(&str, String)],
) {
    let total = data.len();
    let (start, end) = match range.and_then(|r| r.strip_prefix("bytes=")) {
        Some(r) => {
            let (a, b) = r.split_once('-').unwrap_or((r, ""));
            let a: usize = a.parse().unwrap_or(0);
            let b: usize = b.parse().map(|b: usize| b + 1).unwrap_or(total).min(total);
            (a, b)
        }
        None => (0, total),
    };
    if start >= total || start >= end {
        return respond(
            stream,
            416,
            &[("Content-Range", format!("bytes */{total}"))],
            b"",
        );
    }
    let is_meta = range == Some("bytes=0-0");
    let fault = if is_meta {
        None
    } else {
        take_fault(st, name, true)
    };
    let body = &data[start..end];
    let mut headers: Vec<(&str, String)> = extra.to_vec();
    headers.push((
        "Content-Range",
        format!("bytes {start}-{}/{total}", end - 1),
    ));
    let status = if range.is_some() { 206 } else { 200 };
    match fault {
        Some(Fault::DropMidBody) => {
            let half = body.len() / 2;
            write_head(stream, status, &headers, Some(body.len()));
            let _ = stream.write_all(&body[..half]);
            let _ = stream.flush();
            // Dropping the stream closes the connection mid-body.
        }
        Some(Fault::ShortNoLength) => {
            let half = body.len() / 2;
            write_head(stream, status, &headers, None);
            let _ = stream.write_all(&body[..half]);
            let _ = stream.flush();
        }
        _ => {
            write_head(stream, status, &headers, Some(body.len()));
            let _ = stream.write_all(body);
        }
    }
}

fn write_head(stream: &mut TcpStream, status: u16, headers: &[(&str, String)], len: Option<usize>) {
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(n) = len {
        head.push_str(&format!("Content-Length: {n}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
}

fn respond(stream: &mut TcpStream, status: u16, headers: &[(&str, String)], body: &[u8]) {
    write_head(stream, status, headers, Some(body.len()));
    let _ = stream.write_all(body);
}
