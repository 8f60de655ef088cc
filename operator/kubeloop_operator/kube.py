"""The operator's only door to the API server: server-side apply, reads, status patches, pruning."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

import kopf
import kubernetes
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from kubeloop.api.common import GROUP, VERSION

CONFLICT_RETRIES = 10

# kind -> (API path prefix, plural). Only the kinds the operator creates or reads.
KINDS: dict[str, tuple[str, str]] = {
    "Job": ("/apis/batch/v1", "jobs"),
    "CronJob": ("/apis/batch/v1", "cronjobs"),
    "Service": ("/api/v1", "services"),
    "Pod": ("/api/v1", "pods"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "HorizontalPodAutoscaler": ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
    "ServiceMonitor": ("/apis/monitoring.coreos.com/v1", "servicemonitors"),
    "TrainingJob": (f"/apis/{GROUP}/{VERSION}", "trainingjobs"),
    "ModelDeployment": (f"/apis/{GROUP}/{VERSION}", "modeldeployments"),
    "DriftMonitor": (f"/apis/{GROUP}/{VERSION}", "driftmonitors"),
}


def path(kind: str, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
    prefix, plural = KINDS[kind]
    out = f"{prefix}/namespaces/{namespace}/{plural}"
    if name:
        out += f"/{name}"
    if subresource:
        out += f"/{subresource}"
    return out


class Kube:
    """Thin synchronous client; every call is one HTTP request, safe to call from worker threads."""

    def __init__(self, field_manager: str, client: ApiClient | None = None):
        self.field_manager = field_manager
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> ApiClient:
        with self._lock:
            if self._client is None:
                try:
                    kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call, unused-ignore]
                except kubernetes.config.ConfigException:
                    # the client reads $KUBECONFIG when it is imported; a later setting must count too
                    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call, unused-ignore]
                        config_file=os.environ.get("KUBECONFIG")
                    )
                self._client = ApiClient()
            return self._client

    def _call(
        self,
        method: str,
        url: str,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        client = self.client
        token = client.configuration.get_api_key_with_prefix("authorization")
        if token:  # some client releases look the token up under another key than their loader stores it
            headers["authorization"] = token
        if not hasattr(client, "param_serialize"):  # kubernetes < 37: raises ApiException itself
            raw = client.call_api(
                url,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=False,
                _request_timeout=60,
            )
            return json.loads(raw.data) if raw.data else None
        method, full_url, headers, payload, _ = client.param_serialize(
            method,
            url,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = client.call_api(method, full_url, header_params=headers, body=payload, _request_timeout=60)
        response.read()  # type: ignore[no-untyped-call, unused-ignore]
        if not 200 <= response.status < 300:
            raise ApiException(http_resp=response)
        return json.loads(response.data) if response.data else None

    def apply(self, manifest: dict[str, Any]) -> Any:
        """Server-side apply with our one field manager: idempotent, and it takes back drifted fields."""
        meta = manifest["metadata"]
        url = path(manifest["kind"], meta["namespace"], meta["name"])
        query = [("fieldManager", self.field_manager), ("force", "true")]
        return self._call("PATCH", url, manifest, query, "application/apply-patch+yaml")

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self._call("GET", path(kind, namespace, name))
            return result
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def list_labeled(self, kind: str, namespace: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        result = self._call("GET", path(kind, namespace), query=[("labelSelector", selector)])
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    def delete(self, kind: str, namespace: str, name: str) -> None:
        body = {"propagationPolicy": "Foreground"}
        try:
            self._call("DELETE", path(kind, namespace, name), body)
        except ApiException as error:
            if error.status != 404:
                raise

    def create(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create, or None when it already exists (a name that encodes intent makes this idempotent)."""
        try:
            result: dict[str, Any] = self._call(
                "POST", path(manifest["kind"], manifest["metadata"]["namespace"]), manifest
            )
            return result
        except ApiException as error:
            if error.status == 409:
                return None
            raise

    def update_status(
        self, kind: str, namespace: str, name: str, derive: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Read, derive, write with optimistic concurrency: a write based on a stale read is retried,
        so concurrent handlers never undo each other. Returns (before, written); None: no change."""
        for _ in range(CONFLICT_RETRIES):
            current = self.get(kind, namespace, name)
            if current is None or current["metadata"].get("deletionTimestamp"):
                return None
            before = current.get("status") or {}
            status = derive(current)
            if status is None or all(before.get(k) == v for k, v in status.items()):
                return None
            try:
                self.patch_status(kind, namespace, name, status, current["metadata"]["resourceVersion"])
                return before, status
            except ApiException as error:
                if error.status != 409:
                    raise
        raise kopf.TemporaryError(f"status of {kind} {namespace}/{name} kept conflicting", delay=1)

    def patch_status(
        self,
        kind: str,
        namespace: str,
        name: str,
        status: dict[str, Any],
        resource_version: str | None = None,
    ) -> None:
        body: dict[str, Any] = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            self._call(
                "PATCH",
                path(kind, namespace, name, "status"),
                body,
                content_type="application/merge-patch+json",
            )
        except ApiException as error:
            if error.status != 404:  # deleted meanwhile: nothing to report on
                raise

    def crd_exists(self, name: str) -> bool:
        try:
            self._call("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            return True
        except ApiException as error:
            if error.status in (403, 404):
                return False
            raise

    def prune(self, kind: str, namespace: str, labels: dict[str, str], keep: set[str]) -> list[str]:
        """Delete our children of `kind` that the renderer no longer wants; returns their names."""
        gone = []
        for item in self.list_labeled(kind, namespace, labels):
            name = item["metadata"]["name"]
            if name not in keep:
                self.delete(kind, namespace, name)
                gone.append(name)
        return gone
