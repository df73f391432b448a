"""A loopback HTTP server speaking the part of the Hugging Face Hub API that ``huggingface_hub`` uses to
download a repository: revision info, the recursive tree listing with LFS metadata, and file resolve (HEAD with
the ``X-Repo-Commit`` / ``ETag`` / ``X-Linked-*`` headers, GET with HTTP ranges). Tests point ``HF_ENDPOINT`` at
it; nothing in ``huggingface_hub`` is patched.

Fault injection, to test what a real network does to a download:
- ``interrupt``: paths whose next GET sends half of the body and then drops the connection;
- ``corrupt``: paths whose content is served with every byte flipped after the first half (same size).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote, urlparse

from loopback import LoopbackServer


@dataclass
class Repo:
    repo_type: str  # "model" or "dataset"
    commits: dict[str, dict[str, bytes]]  # commit sha -> {path: bytes}
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit sha


def repo_from_folder(root: Path, repo_type: str, commit: str) -> Repo:
    files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    return Repo(repo_type, {commit: files}, {"main": commit})


class HubServer(LoopbackServer):
    def __init__(self, repos: dict[str, Repo]):
        self.repos = repos
        self.interrupt: set[str] = set()
        self.corrupt: set[str] = set()
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self._start_server()

    # --- the protocol ---------------------------------------------------------------------------------

    def _commit(self, repo: Repo, revision: str) -> str | None:
        if revision in repo.commits:
            return revision
        return repo.branches.get(revision)

    def _content(self, path: str, data: bytes) -> bytes:
        if path in self.corrupt:
            half = len(data) // 2
            return data[:half] + bytes(b ^ 0xFF for b in data[half:])
        return data

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _error(self, status: int, code: str, message: str, head: bool = False):
                self._send(status, json.dumps({"error": message}).encode(),
                           {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"},
                           head)

            def _json(self, obj):
                self._send(200, json.dumps(obj).encode(), {"Content-Type": "application/json"})

            def do_GET(self):
                self._route(head=False)

            def do_HEAD(self):
                self._route(head=True)

            def _route(self, head: bool):
                url = urlparse(self.path)
                path = unquote(url.path)
                hub.requests.append((self.command, path, self.headers.get("Range")))
                m = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)/revision/(.+)", path)
                if m:
                    return self._revision(m.group(1)[:-1], m.group(2), m.group(3))
                m = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)/tree/([^/]+)(/.*)?", path)
                if m:
                    return self._tree(m.group(1)[:-1], m.group(2), m.group(3), (m.group(4) or "").lstrip("/"))
                m = re.fullmatch(r"/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
                if m:
                    return self._resolve("dataset" if m.group(1) else "model", m.group(2), m.group(3),
                                         m.group(4), head)
                self._error(404, "EntryNotFound", f"no route for {path}", head)

            def _repo(self, repo_type: str, repo_id: str, head: bool = False) -> Repo | None:
                repo = hub.repos.get(repo_id)
                if repo is None or repo.repo_type != repo_type:
                    self._error(404, "RepoNotFound", f"Repository not found: {repo_id}", head)
                    return None
                return repo

            def _lookup(self, repo_type, repo_id, revision, head=False):
                """(repo, commit), or (None, None) after answering 404 as the Hub does."""
                repo = self._repo(repo_type, repo_id, head)
                commit = hub._commit(repo, revision) if repo is not None else None
                if repo is not None and commit is None:
                    self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
                return (repo, commit) if commit else (None, None)

            def _revision(self, repo_type, repo_id, revision):
                repo, commit = self._lookup(repo_type, repo_id, revision)
                if repo is None:
                    return
                siblings = [{"rfilename": p} for p in sorted(repo.commits[commit])]
                self._json({"id": repo_id, "_id": repo_id, "sha": commit, "private": False, "siblings": siblings,
                            "lastModified": "2024-10-29T00:00:00.000Z", "tags": []})

            def _tree(self, repo_type, repo_id, revision, prefix):
                repo, commit = self._lookup(repo_type, repo_id, revision)
                if repo is None:
                    return
                entries, folders = [], set()
                for p, data in sorted(repo.commits[commit].items()):
                    if prefix and not p.startswith(prefix.rstrip("/") + "/"):
                        continue
                    parts = p.split("/")
                    for i in range(1, len(parts)):
                        folders.add("/".join(parts[:i]))
                    pointer = (f"version https://git-lfs.github.com/spec/v1\noid sha256:"
                               f"{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n").encode()
                    entries.append({"type": "file", "path": p, "size": len(data),
                                    "oid": hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest(),
                                    "lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                            "pointerSize": len(pointer)}})
                entries += [{"type": "directory", "path": f, "oid": hashlib.sha1(f.encode()).hexdigest(),
                             "size": 0} for f in sorted(folders)]
                self._json(entries)

            def _resolve(self, repo_type, repo_id, revision, file_path, head):
                repo, commit = self._lookup(repo_type, repo_id, revision, head)
                if repo is None:
                    return
                data = repo.commits[commit].get(file_path)
                if data is None:
                    return self._error(404, "EntryNotFound", f"{file_path} does not exist", head)
                etag = f'"{hashlib.sha256(data).hexdigest()}"'
                headers = {"X-Repo-Commit": commit, "ETag": etag, "X-Linked-Etag": etag,
                           "X-Linked-Size": str(len(data)), "Accept-Ranges": "bytes",
                           "Content-Type": "application/octet-stream"}
                if head:
                    return self._send(200, data, headers, head=True)
                body = hub._content(file_path, data)
                status, start = 200, 0
                m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if m:
                    start, status = int(m.group(1)), 206
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                    body = body[start:]
                if file_path in hub.interrupt:
                    hub.interrupt.discard(file_path)
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)  # drop the connection mid-body, as a network failure does
                    return
                self._send(status, body, headers)

        return Handler
