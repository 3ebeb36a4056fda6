"""A stand-in for the Hugging Face Hub on 127.0.0.1, for the publish tests (the Hub is not reachable here).

It speaks the endpoints the real ``huggingface_hub`` client uses to publish and read back, with
``HF_ENDPOINT`` pointed at it and Xet disabled (``HF_HUB_DISABLE_XET=1``):

- ``GET /api/whoami-v2``; ``POST /api/repos/create`` (409 when it exists, 403 outside the token's namespaces);
- ``POST /api/validate-yaml``; ``POST /api/{models,datasets}/<repo>/preupload/<rev>`` (upload mode and the
  stored file's oid, so the client skips unchanged files); ``POST .../commit/<rev>`` (ndjson);
  ``POST .../branch/<name>``; ``GET .../revision/<rev>`` and ``GET .../tree/<rev>``;
- git-lfs: ``POST /<repo>.git/info/lfs/objects/batch`` (no upload action for an object it already has) and
  ``PUT /lfs/<oid>`` (sha256 checked);
- ``GET|HEAD /<repo>/resolve/<rev>/<path>`` for ``hf_hub_download`` and ``ModelCard.load``.

Faults: ``fault_rate`` of requests get an HTTP 500 or a dropped connection, before or after the work is
done (seeded, at most ``max_faults``). ``put_delay_s`` slows LFS uploads so a test can kill a client
mid-upload. Every request body and stored file is kept for the secret-leak search.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from urllib.parse import parse_qs, unquote, urlparse

import yaml

from tests.servers import _Handler, _Server

_REPO = r"(?P<kind>models|datasets)/(?P<repo>[^/]+/[^/]+)"
_GIT_REPO = r"(?P<dataset>datasets/)?(?P<repo>[^/]+/[^/]+?)"
_LFS_SUFFIXES = (".safetensors", ".parquet", ".bin", ".png", ".gguf")


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class StandInHub(_Server):
    """Repos in memory: ``repos[(kind, repo_id)] = {"private", "branches", "commits"}``; LFS objects by oid."""

    def __init__(
        self,
        tokens: dict[str, dict] | None = None,
        fault_rate: float = 0.0,
        max_faults: int = 40,
        seed: int = 0,
        put_delay_s: float = 0.0,
    ):
        # token -> user; a user may write to its own name and its orgs
        self.tokens = tokens or {
            "hf_standin_write_token_0123456789": {"name": "alice", "orgs": ["alice-org"]}
        }
        self.repos: dict[tuple[str, str], dict] = {}
        self.lfs: dict[str, bytes] = {}
        self.bodies: list[bytes] = []
        self.events: Counter[str] = Counter()
        self.puts: Counter[str] = Counter()  # completed LFS uploads by oid
        self.fault_rate, self.max_faults, self.put_delay_s = fault_rate, max_faults, put_delay_s
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.lock = threading.RLock()
        super().__init__(self._handler())

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    # -- reading back -------------------------------------------------------------------------------------

    def files(self, repo_id: str, kind: str = "models", revision: str = "main") -> dict[str, bytes]:
        repo = self.repos[(kind, repo_id)]
        commit = repo["commits"][repo["branches"][revision]]
        return {path: self._content(entry) for path, entry in commit["files"].items()}

    def commits(self, repo_id: str, kind: str = "models") -> list[dict]:
        return [c for c in self.repos[(kind, repo_id)]["commits"].values() if c["parent"] is not None]

    def _content(self, entry: dict) -> bytes:
        return self.lfs[entry["lfs"]] if entry.get("lfs") else entry["content"]

    # -- faults -------------------------------------------------------------------------------------------

    def pick_fault(self) -> str | None:
        with self.lock:
            if sum(self.injected.values()) >= self.max_faults or self.rng.random() >= self.fault_rate:
                return None
            kind = ("http_500", "drop_before", "drop_after")[sum(self.injected.values()) % 3]
            self.injected[kind] += 1
            return kind

    # -- request handling ---------------------------------------------------------------------------------

    def user(self, headers) -> dict | None:
        auth = headers.get("Authorization", "")
        return self.tokens.get(auth.removeprefix("Bearer ").strip()) if auth.startswith("Bearer ") else None

    def route(self, method: str, path: str, query: dict, body: bytes, headers):
        """(status, payload, extra headers); payload bytes are sent as they are."""
        self.events[f"{method} {_event_name(path)}"] += 1
        routes = [
            ("GET", r"/api/whoami-v2", self.whoami),
            ("POST", r"/api/repos/create", self.create_repo),
            ("POST", r"/api/validate-yaml", self.validate_yaml),
            ("POST", rf"/api/{_REPO}/preupload/(?P<rev>[^/]+)", self.preupload),
            ("POST", rf"/api/{_REPO}/commit/(?P<rev>[^/]+)", self.commit),
            ("POST", rf"/api/{_REPO}/branch/(?P<rev>[^/]+)", self.create_branch),
            ("GET", rf"/api/{_REPO}(/revision/(?P<rev>[^/]+))?", self.repo_info),
            ("GET", rf"/api/{_REPO}/tree/(?P<rev>[^/]+)(/(?P<path>.*))?", self.tree),
            ("POST", rf"/{_GIT_REPO}\.git/info/lfs/objects/batch", self.lfs_batch),
            ("PUT", r"/lfs/(?P<oid>[0-9a-f]{64})", self.lfs_put),
            ("GET", rf"/{_GIT_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", self.resolve),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match and (verb == method or (verb, method) == ("GET", "HEAD")):
                groups = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                return handler(body=body, headers=headers, query=query, **groups)
        return 404, {"error": f"stand-in hub: no route for {method} {path}"}, {}

    def _writable(self, headers, namespace: str):
        user = self.user(headers)
        if user is None:
            return 401, {"error": "Invalid credentials in Authorization header"}, {}
        if namespace not in (user["name"], *user["orgs"]):
            return (
                403,
                {"error": f'You don\'t have the rights to create a repo under the namespace "{namespace}"'},
                {},
            )
        return None

    def _repo(self, kind: str, repo: str, headers, write: bool = False):
        """(repo, None) or (None, error): writing needs the namespace; a private repo is hidden from others."""
        found = self.repos.get((kind, repo))
        denied = (
            self._writable(headers, repo.split("/")[0]) if write or (found and found["private"]) else None
        )
        if denied and write:
            return None, denied
        if found is None or denied:
            return None, (404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        return found, None

    def whoami(self, headers, **_):
        user = self.user(headers)
        if user is None:
            return 401, {"error": "Invalid credentials in Authorization header"}, {}
        orgs = [{"name": org, "roleInOrg": "write"} for org in user["orgs"]]
        token = {"displayName": "test", "role": "write"}
        return 200, {"type": "user", "name": user["name"], "orgs": orgs, "auth": {"accessToken": token}}, {}

    def create_repo(self, body, headers, **_):
        spec = json.loads(body)
        namespace = spec.get("organization") or (self.user(headers) or {}).get("name", "")
        denied = self._writable(headers, namespace)
        if denied:
            return denied
        kind, repo_id = f"{spec.get('type') or 'model'}s", f"{namespace}/{spec['name']}"
        with self.lock:
            if (kind, repo_id) in self.repos:
                return (
                    409,
                    {"error": "You already created this model repo", "url": self._url(kind, repo_id)},
                    {},
                )
            root = hashlib.sha1(repo_id.encode()).hexdigest()
            self.repos[(kind, repo_id)] = {
                "private": spec.get("visibility", "public") != "public" or bool(spec.get("private")),
                "branches": {"main": root},
                "commits": {root: {"parent": None, "files": {}, "message": "initial commit"}},
            }
        return 200, {"url": self._url(kind, repo_id), "name": repo_id}, {}

    def _url(self, kind: str, repo_id: str) -> str:
        return f"{self.endpoint}/{'' if kind == 'models' else 'datasets/'}{repo_id}"

    def validate_yaml(self, body, **_):
        try:
            yaml.safe_load(json.loads(body)["content"].split("---")[1])
        except Exception as exc:  # what the Hub answers for broken front matter
            return 400, {"errors": [{"message": str(exc)}]}, {}
        return 200, {"errors": [], "warnings": []}, {}

    def _head(self, repo: dict, rev: str) -> dict | None:
        sha = repo["branches"].get(rev, rev if rev in repo["commits"] else None)
        return repo["commits"].get(sha) if sha else None

    def preupload(self, kind, repo, rev, body, headers, **_):
        found, error = self._repo(kind, repo, headers, write=True)
        if error:
            return error
        head = self._head(found, rev) or {"files": {}}
        files = []
        for item in json.loads(body)["files"]:
            stored = head["files"].get(item["path"])
            mode = "lfs" if item["path"].endswith(_LFS_SUFFIXES) or item["size"] > 10 << 20 else "regular"
            oid = stored and (stored["lfs"] if mode == "lfs" else git_sha1(self._content(stored)))
            files.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return 200, {"files": files, "commitOid": self._tip(found, rev)}, {}

    def _tip(self, repo: dict, rev: str) -> str | None:
        return repo["branches"].get(rev)

    def lfs_batch(self, repo, body, headers, dataset=None, **_):
        found, error = self._repo("datasets" if dataset else "models", repo, headers, write=True)
        if error:
            return error
        objects = []
        for obj in json.loads(body)["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs:  # already stored: no action, the client skips the upload
                entry["actions"] = {"upload": {"href": f"{self.endpoint}/lfs/{obj['oid']}"}}
            objects.append(entry)
        return (
            200,
            {"transfer": "basic", "objects": objects},
            {"Content-Type": "application/vnd.git-lfs+json"},
        )

    def lfs_put(self, oid, body, **_):
        if self.put_delay_s:
            time.sleep(self.put_delay_s)
        if hashlib.sha256(body).hexdigest() != oid:
            return 400, {"error": "sha256 mismatch"}, {}
        with self.lock:
            self.lfs[oid] = body
            self.puts[oid] += 1
        return 200, b"", {}

    def commit(self, kind, repo, rev, body, headers, **_):
        found, error = self._repo(kind, repo, headers, write=True)
        if error:
            return error
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next(item["value"] for item in lines if item["key"] == "header")
        with self.lock:
            parent_sha = found["branches"].get(rev)
            if parent_sha is None:
                return 404, {"error": f"Invalid rev id: {rev}"}, {"X-Error-Code": "RevisionNotFound"}
            files = dict(found["commits"][parent_sha]["files"])
            for item in lines:
                value = item["value"]
                if item["key"] == "file":
                    files[value["path"]] = {"content": base64.b64decode(value["content"]), "lfs": None}
                elif item["key"] == "lfsFile":
                    if value["oid"] not in self.lfs:
                        return 422, {"error": f"LFS object {value['oid']} was never uploaded"}, {}
                    files[value["path"]] = {"lfs": value["oid"]}
                elif item["key"] == "deletedFile":
                    files.pop(value["path"], None)
            sha = hashlib.sha1(f"{parent_sha}{sorted(files)}{time.time_ns()}".encode()).hexdigest()
            found["commits"][sha] = {
                "parent": parent_sha,
                "files": files,
                "message": header["summary"],
                "description": header.get("description", ""),
            }
            found["branches"][rev] = sha
        return 200, {"commitUrl": f"{self._url(kind, repo)}/commit/{sha}", "commitOid": sha}, {}

    def create_branch(self, kind, repo, rev, headers, **_):
        found, error = self._repo(kind, repo, headers, write=True)
        if error:
            return error
        with self.lock:
            if rev in found["branches"]:
                return 409, {"error": f"Reference already exists: refs/heads/{rev}"}, {}
            found["branches"][rev] = found["branches"]["main"]
        return 200, {}, {}

    def repo_info(self, kind, repo, headers, rev="main", **_):
        found, error = self._repo(kind, repo, headers)
        if error:
            return error
        head = self._head(found, rev)
        if head is None:
            return 404, {"error": f"Invalid rev id: {rev}"}, {"X-Error-Code": "RevisionNotFound"}
        siblings = [{"rfilename": path} for path in sorted(head["files"])]
        info = {"id": repo, "sha": found["branches"].get(rev, rev), "private": found["private"]}
        return 200, {**info, "siblings": siblings}, {}

    def tree(self, kind, repo, rev, headers, path="", **_):
        found, error = self._repo(kind, repo, headers)
        if error:
            return error
        head = self._head(found, rev) or {"files": {}}
        entries = []
        for name, entry in sorted(head["files"].items()):
            if name.startswith(path.rstrip("/")):
                data = self._content(entry)
                item = {"type": "file", "path": name, "size": len(data), "oid": git_sha1(data)}
                if entry.get("lfs"):
                    item["lfs"] = {"oid": entry["lfs"], "size": len(data), "pointerSize": 134}
                entries.append(item)
        return 200, entries, {}

    def resolve(self, repo, rev, path, headers, dataset=None, **_):
        found, error = self._repo("datasets" if dataset else "models", repo, headers)
        if error:
            return error
        head = self._head(found, rev)
        entry = head and head["files"].get(path)
        if entry is None:
            return 404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"}
        data = self._content(entry)
        commit = found["branches"].get(rev, rev)
        return 200, data, {"ETag": f'"{git_sha1(data)}"', "X-Repo-Commit": commit}

    def _handler(self):
        hub = self

        class Handler(_Handler):
            def _serve(self, method: str):
                url = urlparse(self.path)
                body = self.read_body()
                with hub.lock:
                    hub.bodies.append(body)
                fault = hub.pick_fault()
                if fault == "drop_before":
                    return self.drop()
                if fault == "http_500":
                    return self.send_json(500, {"error": "injected 500"})
                status, payload, headers = hub.route(
                    method, url.path, parse_qs(url.query), body, self.headers
                )
                if fault == "drop_after":  # the work is done, the client never hears of it
                    return self.drop()
                if method == "HEAD":
                    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                    self.send_response(status)
                    for key, value in {**headers, "Content-Length": str(len(data))}.items():
                        self.send_header(key, value)
                    return self.end_headers()
                self.send_json(status, payload, headers)

            def do_GET(self):
                self._serve("GET")

            def do_HEAD(self):
                self._serve("HEAD")

            def do_POST(self):
                self._serve("POST")

            def do_PUT(self):
                self._serve("PUT")

        return Handler


def _event_name(path: str) -> str:
    for name in ("preupload", "commit", "branch", "batch", "resolve", "tree", "revision", "whoami", "create"):
        if f"/{name}" in path or path.endswith(name):
            return name
    return "lfs-put" if path.startswith("/lfs/") else path
