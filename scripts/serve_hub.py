#!/usr/bin/env python3
"""Serve replica repos (scripts/make_replica_hub.py's hub.json layout) as a Hugging Face Hub on
127.0.0.1, so that `HF_ENDPOINT=http://127.0.0.1:PORT tomtat run ...` downloads the built-in
models by name, as it would from the real Hub. The same endpoints and headers as the Rust fake
Hub of the tests (tests/common/fake_hub.rs), which hf-hub 0.4 uses:

  GET /api/models/{repo}/revision/{rev}   -> {"sha", "siblings": [{"rfilename", "size"}]}
  GET /{repo}/resolve/{rev}/{file}        -> the bytes (Range honoured) with X-Repo-Commit and
                                             ETag; .bin / .safetensors answer 302 to /cdn/{etag}
                                             with X-Linked-Etag / X-Linked-Size, as LFS files do
  GET /cdn/{etag}                         -> the LFS bytes (Range honoured)

Usage (full-size replicas for a local run; stdlib only):
  python scripts/make_replica_hub.py --full --out /tmp/full --only opus-mt-vi-en,distilbart-cnn-12-6
  python scripts/serve_hub.py --root /tmp/full --port 8765 &
  HF_ENDPOINT=http://127.0.0.1:8765 HF_HOME=/tmp/hf cargo run --release -- run articles.jsonl
--root is the directory holding replicas/hub.json (the paths in it are relative to --root);
the default serves the committed small replicas (tests/fixtures). Loopback only.
"""
import argparse
import hashlib
import json
import os
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

HERE = os.path.dirname(os.path.abspath(__file__))
LFS = (".bin", ".safetensors")
CHUNK = 1 << 20


def load(root):
    hub = json.load(open(os.path.join(root, "replicas", "hub.json"), encoding="utf-8"))
    repos = {}
    blobs = {}
    for repo, r in hub.items():
        commits = {}
        for sha, files in r["commits"].items():
            table = {}
            for name, rel in files.items():
                path = os.path.join(root, rel)
                size = os.path.getsize(path)
                # content-derived name, as the Hub's etags are (cheap: path + size + mtime)
                tag = hashlib.sha256(f"{os.path.realpath(path)}:{size}".encode()).hexdigest()
                table[name] = (path, size, tag)
                blobs[tag] = (path, size)
            commits[sha] = table
        revs = dict(r["revisions"])
        for sha in commits:
            revs.setdefault(sha, sha)
        repos[repo] = (revs, commits)
    return repos, blobs


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    repos = {}
    blobs = {}

    def log_message(self, fmt, *args):  # quiet unless -v
        if self.server.verbose:
            sys.stderr.write("hub: " + fmt % args + "\n")

    def reply(self, status, headers=(), body=b""):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def commit(self, repo, rev):
        if repo not in self.repos:
            return None, None
        revs, commits = self.repos[repo]
        sha = revs.get(rev)
        return sha, commits.get(sha)

    def send_file(self, path, size, extra):
        rng = self.headers.get("Range")
        start, end = 0, size
        if rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if m:
                start = int(m.group(1) or 0)
                end = min(int(m.group(2)) + 1, size) if m.group(2) else size
            if start >= size or start >= end:
                return self.reply(416, [("Content-Range", f"bytes */{size}")])
        self.send_response(206 if rng else 200)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.send_header("Content-Length", str(end - start))
        self.send_header("Connection", "close")
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start
            while left:
                buf = f.read(min(CHUNK, left))
                if not buf:
                    break
                self.wfile.write(buf)
                left -= len(buf)

    def do_GET(self):
        path = unquote(self.path.split("?")[0])
        m = re.fullmatch(r"/api/models/(.+?)/revision/(.+)", path)
        if m:
            sha, files = self.commit(m.group(1), m.group(2))
            if m.group(1) not in self.repos:
                return self.reply(404, [("X-Error-Code", "RepoNotFound")], b"{}")
            if files is None:
                return self.reply(404, [("X-Error-Code", "RevisionNotFound")], b"{}")
            body = json.dumps({"id": m.group(1), "modelId": m.group(1), "sha": sha,
                               "siblings": [{"rfilename": n, "size": s}
                                            for n, (_, s, _) in sorted(files.items())]})
            return self.reply(200, [("Content-Type", "application/json")], body.encode())
        m = re.fullmatch(r"/cdn/([0-9a-f]+)", path)
        if m:
            if m.group(1) not in self.blobs:
                return self.reply(404, body=b"no such blob")
            p, size = self.blobs[m.group(1)]
            return self.send_file(p, size, [])
        m = re.fullmatch(r"/(.+?)/resolve/(.+?)/(.+)", path)
        if m:
            # revisions like refs/pr/18 contain slashes: try the longest repo/rev splits
            repo, rest = m.group(1), m.group(2) + "/" + m.group(3)
            for i in range(rest.count("/"), 0, -1):
                rev, file = rest.split("/", i)[:-1], rest.split("/", i)[-1]
                rev = "/".join(rev)
                sha, files = self.commit(repo, rev)
                if files is not None:
                    break
            else:
                return self.reply(404, [("X-Error-Code", "RepoNotFound")])
            if file not in files:
                return self.reply(404, [("X-Error-Code", "EntryNotFound")], b"entry not found")
            p, size, tag = files[file]
            if file.endswith(LFS):
                host = self.headers.get("Host", "127.0.0.1")
                return self.reply(302, [("Location", f"http://{host}/cdn/{tag}"),
                                        ("X-Repo-Commit", sha),
                                        ("X-Linked-Etag", f'"{tag}"'),
                                        ("X-Linked-Size", str(size))])
            return self.send_file(p, size, [("X-Repo-Commit", sha), ("ETag", f'"{tag}"')])
        return self.reply(404, body=b"not found")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--root", default=os.path.join(HERE, "..", "tests", "fixtures"))
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    Handler.repos, Handler.blobs = load(a.root)
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.verbose = a.verbose
    print(f"serving {len(Handler.repos)} repos from {a.root} at http://127.0.0.1:{a.port}",
          file=sys.stderr)
    srv.serve_forever()


if __name__ == "__main__":
    main()
