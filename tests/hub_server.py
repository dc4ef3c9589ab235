"""A small Hugging Face Hub for the tests: the endpoints that ``huggingface_hub``'s real client
calls to push a model (``Trainer.push_to_hub``, ``upload_folder``) and to load it back
(``from_pretrained``, ``pipeline``), over real HTTP, with the standard library only.

* ``GET /api/whoami-v2``: the account of the token;
* ``POST /api/repos/create``: a model repository, with a first commit, as the Hub makes one;
* ``POST /api/validate-yaml``: a ``README.md``'s metadata, checked before an upload (here only that
  it is a YAML mapping; the Hub checks its fields too);
* ``POST /api/models/{repo}/preupload/{revision}``: every file ``regular`` (sent inside the commit),
  so no LFS or Xet storage is needed;
* ``POST /api/models/{repo}/commit/{revision}``: the NDJSON commit (header, then one line per file);
* ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{revision}``: the revision's commit
  and files (``model_info``, ``repo_info``);
* ``GET /api/models/{repo}/tree/{revision}[/{folder}]``: a folder's files and folders (``list_repo_tree``,
  which transformers calls to look for chat templates);
* ``HEAD``/``GET /{repo}/resolve/{revision}/{path}``: a file, with the ``X-Repo-Commit`` and
  ``ETag`` headers that ``hf_hub_download`` keys its cache on.

Tokens: :data:`GOOD_TOKEN` belongs to :data:`USER`; any other token gets 401, with the message
the Hub gives ("Invalid credentials in Authorization header"). Writes need the good token; reads
of these public repositories need none. Errors carry the Hub's ``X-Error-Code`` headers
(``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``), which the client turns into its own
exceptions. Every request is recorded in :attr:`HubState.requests`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import yaml

GOOD_TOKEN = "hf_course_test_token"
USER = "learner"
BAD_CREDENTIALS = "Invalid credentials in Authorization header"
REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"


@dataclass
class Repo:
    """A repository: each commit's files by path, and the branch ``main`` pointing at the last one."""

    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    main: str = ""

    def commit(self, files: dict[str, bytes], summary: str) -> str:
        """Record a commit of ``files`` (the whole tree) on ``main`` and return its id."""
        digest = hashlib.sha1(f"{self.main}|{summary}|{len(self.commits)}".encode())
        for path in sorted(files):
            digest.update(path.encode() + hashlib.sha1(files[path]).digest())
        sha = digest.hexdigest()
        self.commits[sha], self.main = dict(files), sha
        return sha

    def resolve(self, revision: str) -> str | None:
        """A branch name or commit id as a commit id (None when unknown)."""
        return self.main if revision == "main" else revision if revision in self.commits else None


@dataclass
class HubState:
    """What the server holds and saw: repositories by id, and ``(method, path, status)`` per request."""

    endpoint: str = ""
    repos: dict[str, Repo] = field(default_factory=dict)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def git_blob_sha(content: bytes) -> str:
    """Git's id of a file's content: what the Hub sends as a regular file's ``oid`` and ``ETag``."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class HubHandler(BaseHTTPRequestHandler):
    """One request; ``state`` is set on the subclass that :func:`serve` makes."""

    state: HubState
    protocol_version = "HTTP/1.1"
    routes = (
        ("GET", r"/api/whoami-v2", "whoami"),
        ("POST", r"/api/repos/create", "create_repo"),
        ("POST", r"/api/validate-yaml", "validate_yaml"),
        ("POST", rf"/api/models/{REPO}/preupload/(?P<revision>[^/]+)", "preupload"),
        ("POST", rf"/api/models/{REPO}/commit/(?P<revision>[^/]+)", "commit"),
        ("GET", rf"/api/models/{REPO}(?:/revision/(?P<revision>[^/]+))?", "info"),
        ("GET", rf"/api/models/{REPO}/tree/(?P<revision>[^/]+)(?:/(?P<folder>.+))?", "tree"),
        ("GET", rf"/{REPO}/resolve/(?P<revision>[^/]+)/(?P<path>.+)", "resolve"),
        ("HEAD", rf"/{REPO}/resolve/(?P<revision>[^/]+)/(?P<path>.+)", "resolve"),
    )

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        """Quiet: the tests read :attr:`HubState.requests` instead of stderr."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        for route_method, pattern, name in self.routes:
            match = re.fullmatch(pattern, path)
            if route_method == method and match:
                break
        else:
            return self._error(404, f"no such endpoint: {method} {path}")
        token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip() or None
        if token is not None and token != GOOD_TOKEN:
            return self._error(401, BAD_CREDENTIALS)
        if method == "POST" and token is None:
            return self._error(401, "You must be authenticated to access this endpoint")
        with self.state.lock:
            getattr(self, name)(body=body, **{key: unquote(value) for key, value in match.groupdict().items() if value})

    def whoami(self, body: bytes) -> None:
        self._json({"type": "user", "name": USER, "fullname": "Course Learner", "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "tests", "role": "write"}}})

    def create_repo(self, body: bytes) -> None:
        payload = json.loads(body)
        namespace = payload.get("organization") or USER
        if namespace != USER:
            return self._error(403, f"You don't have the rights to create a model under the namespace {namespace}")
        if payload.get("type", "model") not in (None, "model"):
            return self._error(400, "this test server holds model repositories only")
        repo_id = f"{namespace}/{payload['name']}"
        url = f"{self.state.endpoint}/{repo_id}"
        if repo_id in self.state.repos:
            return self._json({"error": "You already created this model repo", "url": url}, status=409)
        self.state.repos[repo_id] = Repo()
        self.state.repos[repo_id].commit({".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}, "initial commit")
        self._json({"url": url, "name": repo_id, "id": repo_id})

    def validate_yaml(self, body: bytes) -> None:
        content = json.loads(body)["content"]
        parts = content.split("---\n", 2) if content.startswith("---\n") else []
        try:
            metadata = yaml.safe_load(parts[1]) if len(parts) == 3 else {}
        except yaml.YAMLError as error:
            metadata = str(error)
        if not isinstance(metadata, dict):
            return self._json({"errors": [{"message": f"the metadata is not a YAML mapping: {metadata}"}]}, status=400)
        self._json({"errors": [], "warnings": []})

    def preupload(self, body: bytes, repo: str, revision: str) -> None:
        files = self._tree(repo, revision)
        if files is None:
            return
        self._json({"files": [
            {"path": item["path"], "uploadMode": "regular", "shouldIgnore": False,
             "oid": git_blob_sha(files[item["path"]]) if item["path"] in files else None}
            for item in json.loads(body)["files"]
        ]})

    def commit(self, body: bytes, repo: str, revision: str) -> None:
        files = self._tree(repo, revision)
        if files is None:
            return
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if self.headers.get("Content-Type") != "application/x-ndjson" or not lines or lines[0]["key"] != "header":
            return self._error(400, "a commit is NDJSON: a header line, then one line per operation")
        header, files = lines[0]["value"], dict(files)
        if header.get("parentCommit") not in (None, self.state.repos[repo].main):
            return self._error(412, "A commit has happened since. Please refresh and try again.")
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                files = {path: data for path, data in files.items() if not path.startswith(value["path"].rstrip("/") + "/")}
            else:
                return self._error(400, f"{key}: this test server takes regular files only (no LFS or Xet)")
        sha = self.state.repos[repo].commit(files, header["summary"])
        self._json({"success": True, "commitOid": sha, "commitUrl": f"{self.state.endpoint}/{repo}/commit/{sha}"})

    def info(self, body: bytes, repo: str, revision: str = "main") -> None:
        files = self._tree(repo, revision)
        if files is None:
            return
        self._json({"id": repo, "modelId": repo, "author": repo.split("/")[0], "sha": self.state.repos[repo].resolve(revision),
                    "private": False, "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": [],
                    "library_name": "transformers", "lastModified": "2026-12-01T00:00:00.000Z",
                    "siblings": [{"rfilename": path, "size": len(data)} for path, data in sorted(files.items())]})

    def tree(self, body: bytes, repo: str, revision: str, folder: str = "") -> None:
        files = self._tree(repo, revision)
        if files is None:
            return
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        below = {path.removeprefix(prefix) for path in files if path.startswith(prefix)}
        if not below:
            return self._error(404, f"{folder} does not exist at revision {revision}", code="EntryNotFound")
        entries = [{"type": "file", "path": prefix + name, "size": len(files[prefix + name]),
                    "oid": git_blob_sha(files[prefix + name])} for name in sorted(below) if "/" not in name]
        entries += [{"type": "directory", "path": prefix + name, "oid": "0" * 40}
                    for name in sorted({name.split("/")[0] for name in below if "/" in name})]
        self._json(entries)

    def resolve(self, body: bytes, repo: str, revision: str, path: str) -> None:
        files = self._tree(repo, revision)
        if files is None:
            return
        sha = self.state.repos[repo].resolve(revision)
        if path not in files:
            return self._error(404, f"{path} does not exist at revision {revision}", code="EntryNotFound",
                               headers={"X-Repo-Commit": sha})
        content = files[path]
        self._reply(200, content, "application/octet-stream",
                    {"X-Repo-Commit": sha, "ETag": f'"{git_blob_sha(content)}"'})

    def _tree(self, repo: str, revision: str) -> dict[str, bytes] | None:
        """The files of ``repo`` at ``revision``, or None after answering 404 as the Hub does."""
        if repo not in self.state.repos:
            self._error(404, "Repository not found", code="RepoNotFound")
            return None
        sha = self.state.repos[repo].resolve(revision)
        if sha is None:
            self._error(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
            return None
        return self.state.repos[repo].commits[sha]

    def _json(self, payload: dict | list, status: int = 200) -> None:
        self._reply(status, json.dumps(payload).encode(), "application/json")

    def _error(self, status: int, message: str, code: str | None = None, headers: dict | None = None) -> None:
        extra = {"X-Error-Message": message, **({"X-Error-Code": code} if code else {}), **(headers or {})}
        self._reply(status, json.dumps({"error": message}).encode(), "application/json", extra)

    def _reply(self, status: int, content: bytes, content_type: str, headers: dict | None = None) -> None:
        self.state.requests.append((self.command, urlsplit(self.path).path, status))
        self.send_response(status)
        for name, value in {"Content-Type": content_type, "Content-Length": str(len(content)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)


@contextmanager
def serve(host: str = "127.0.0.1") -> Iterator[HubState]:
    """Run the Hub on a free port of ``host`` in a thread, for the ``with`` block; yields its state,
    whose ``endpoint`` (``http://host:port``) goes into ``HF_ENDPOINT``."""
    state = HubState()
    server = ThreadingHTTPServer((host, 0), type("Handler", (HubHandler,), {"state": state}))
    state.endpoint = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
