"""A stand-in for a lakeFS server: exactly the REST endpoints that lakefs-spec and the lakeFS SDK call to
resolve a ref and read objects, over real HTTP, with basic auth. It is a stand-in because no lakeFS
server can run on this machine (the Go module github.com/treeverse/lakefs is refused by the Go module
proxy here, and no container registry is reachable); every request it does not know is answered 404
and remembered in ``unknown`` so that a test sees an SDK that started calling something else.

The model: commits (id -> objects by path), branches (name -> commit id).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from tests.fixtures.http_server import http_server

API = "/api/v1"


@dataclass
class LakeFsState:
    access_key_id: str
    secret_access_key: str
    repository: str
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    object_reads: list[str] = field(default_factory=list)  # the refs objects were read at

    def commit(self, branch: str, objects: dict[str, bytes]) -> str:
        """A new commit on ``branch`` with exactly ``objects``; its id (64 hex, as lakeFS's)."""
        parent = self.branches.get(branch, "")
        commit_id = hashlib.sha256(f"{parent}{sorted(objects.items())}".encode()).hexdigest()
        self.commits[commit_id] = dict(objects)
        self.branches[branch] = commit_id
        return commit_id

    def resolve(self, ref: str) -> str | None:
        return self.branches.get(ref) or (ref if ref in self.commits else None)


def commit_json(commit_id: str) -> dict[str, Any]:
    return {
        "id": commit_id,
        "parents": [],
        "committer": "test",
        "message": "data",
        "creation_date": 1_700_000_000,
        "meta_range_id": "",
        "metadata": {},
    }


def stats_json(path: str, data: bytes) -> dict[str, Any]:
    return {
        "path": path,
        "path_type": "object",
        "physical_address": f"local://{path}",
        "checksum": hashlib.md5(data).hexdigest(),  # lakeFS's checksums are ETags (MD5)
        "size_bytes": len(data),
        "mtime": 1_700_000_000,
        "content_type": "application/octet-stream",
    }


class Handler(BaseHTTPRequestHandler):
    state: LakeFsState

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def reply(self, code: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def authorized(self) -> bool:
        expected = f"{self.state.access_key_id}:{self.state.secret_access_key}".encode()
        return self.headers.get("Authorization", "") == "Basic " + base64.b64encode(expected).decode()

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        parts = [unquote(p) for p in url.path.removeprefix(API).strip("/").split("/")]
        if not self.authorized():
            self.reply(401, {"message": "error authenticating request"})
            return
        if parts == ["config", "version"]:
            self.reply(200, {"version": "1.50.0"})
            return
        if len(parts) >= 4 and parts[0] == "repositories" and parts[1] == self.state.repository:
            self.repository_request(parts[2:], query)
            return
        self.state.unknown.append(f"{self.command} {self.path}")
        self.reply(404, {"message": "not found"})

    def repository_request(self, parts: list[str], query: dict[str, str]) -> None:
        commit_id = self.state.resolve(parts[1])
        if commit_id is None:
            self.reply(404, {"message": f"ref {parts[1]} not found"})
            return
        objects = self.state.commits[commit_id]
        if parts[0] == "commits" and len(parts) == 2:
            self.reply(200, commit_json(commit_id))
        elif parts[0] == "refs" and parts[2:] == ["objects", "stat"]:
            path = query.get("path", "")
            if path in objects:
                self.reply(200, stats_json(path, objects[path]))
            else:
                self.reply(404, {"message": "not found"})
        elif parts[0] == "refs" and parts[2:] == ["objects", "ls"]:
            self.reply(200, listing(objects, query))
        elif parts[0] == "refs" and parts[2:] == ["objects"]:
            path = query.get("path", "")
            if path not in objects:
                self.reply(404, {"message": "not found"})
                return
            self.state.object_reads.append(parts[1])
            self.reply(200, byte_range(objects[path], self.headers.get("Range")), "application/octet-stream")
        else:
            self.state.unknown.append(f"{self.command} {self.path}")
            self.reply(404, {"message": "not found"})


def listing(objects: dict[str, bytes], query: dict[str, str]) -> dict[str, Any]:
    prefix, delimiter, after = query.get("prefix", ""), query.get("delimiter", ""), query.get("after", "")
    results: dict[str, dict[str, Any]] = {}
    for path in sorted(objects):
        if not path.startswith(prefix) or path <= after:
            continue
        rest = path[len(prefix) :]
        if delimiter and delimiter in rest:
            common = prefix + rest.split(delimiter, 1)[0] + delimiter
            results[common] = {
                "path": common,
                "path_type": "common_prefix",
                "physical_address": "",
                "checksum": "",
                "mtime": 0,
            }
        else:
            results[path] = stats_json(path, objects[path])
    entries = list(results.values())
    pagination = {"has_more": False, "next_offset": "", "results": len(entries), "max_per_page": 1000}
    return {"pagination": pagination, "results": entries}


def byte_range(data: bytes, header: str | None) -> bytes:
    if not header or not header.startswith("bytes="):
        return data
    start, _, end = header.removeprefix("bytes=").partition("-")
    return data[int(start or 0) : (int(end) + 1 if end else None)]


@contextmanager
def lakefs_standin(state: LakeFsState) -> Iterator[str]:
    """The stand-in serving ``state`` on 127.0.0.1; yields its endpoint URL."""
    with http_server(type("BoundHandler", (Handler,), {"state": state})) as url:
        yield url
