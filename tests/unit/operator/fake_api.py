"""An in-memory API server behind the operator's real Kube client: paths, resourceVersions, 409s.

Enough of the Kubernetes API for reconcile decisions: create, get, list by label, server-side
apply (create or merge), merge-patch and replace of the status subresource (with the
resourceVersion precondition), delete. `before` hooks let a test interleave a second writer.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

Obj = dict[str, Any]
Hook = Callable[[str, str, Any], None]


def merge(base: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge, everything else (lists included) is replaced."""
    if not isinstance(patch, dict) or not isinstance(base, dict):
        return copy.deepcopy(patch)
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(base.get(key), value)
    return out


class FakeApiServer:
    def __init__(self) -> None:
        self.objects: dict[str, Obj] = {}
        self.requests: list[tuple[str, str]] = []
        self.before: list[Hook] = []
        self._versions = itertools.count(1)

    def __call__(
        self,
        method: str,
        url: str,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        self.requests.append((method, url))
        for hook in list(self.before):
            hook(method, url, body)
        body = json.loads(json.dumps(body)) if body is not None else None
        subresource = "status" if url.endswith("/status") else ""
        path = url.removesuffix("/status")
        if method == "GET":
            if path in self.objects:
                return copy.deepcopy(self.objects[path])
            if "/namespaces/" in path and path.split("/namespaces/", 1)[1].count("/") == 1:
                return {"items": self._list(path, dict(query or []).get("labelSelector", ""))}
            raise ApiException(status=404, reason="Not Found")
        if method == "POST":
            key = f"{path}/{body['metadata']['name']}"
            if key in self.objects:
                raise ApiException(status=409, reason="AlreadyExists")
            return self.put(key, body)
        if method == "DELETE":
            if self.objects.pop(path, None) is None:
                raise ApiException(status=404, reason="Not Found")
            return {}
        current = self.objects.get(path)
        if subresource == "" and method == "PATCH" and "apply-patch" in content_type:
            if current is None:
                return self.put(path, body)
            applied = merge(current, {k: v for k, v in body.items() if k != "status"})
            return self.store(path, applied, spec_changed=applied.get("spec") != current.get("spec"))
        if current is None:
            raise ApiException(status=404, reason="Not Found")
        wanted_version = (body.get("metadata") or {}).get("resourceVersion")
        if wanted_version is not None and wanted_version != current["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        if method == "PUT" and subresource:
            return self.store(path, {**current, "status": body.get("status") or {}})
        if method == "PATCH" and subresource:
            return self.store(path, merge(current, {"status": body.get("status")}))
        raise AssertionError(f"the fake API server does not do {method} {url}")

    def _list(self, collection: str, selector: str) -> list[Obj]:
        wanted = dict(term.split("=", 1) for term in selector.split(",") if term)
        found = [
            copy.deepcopy(obj)
            for key, obj in self.objects.items()
            if key.rsplit("/", 1)[0] == collection
            and all((obj["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
        ]
        return sorted(found, key=lambda o: o["metadata"]["name"])

    def put(self, key: str, obj: Obj) -> Obj:
        """Create (as a user or controller would): uid, generation 1, creationTimestamp."""
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        return self.store(key, obj)

    def store(self, key: str, obj: Obj, spec_changed: bool = False) -> Obj:
        obj = copy.deepcopy(obj)
        if spec_changed:
            obj["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        self.objects[key] = obj
        return copy.deepcopy(obj)

    def count(self, method: str, fragment: str = "") -> int:
        return sum(1 for m, url in self.requests if m == method and fragment in url)
