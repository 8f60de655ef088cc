"""The operator's only door to the API server: server-side apply, reads, status writes, pruning."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

import kubernetes
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from kubeloop.api.common import GROUP, VERSION
from kubeloop_operator.metrics import API_REQUESTS

Obj = dict[str, Any]
Transport = Callable[[str, str, Any, list[tuple[str, Any]], str], Any]
# kind -> (API path prefix, plural). Only the kinds the operator creates or reads.
KINDS: dict[str, tuple[str, str]] = {
    "Job": ("/apis/batch/v1", "jobs"),
    "CronJob": ("/apis/batch/v1", "cronjobs"),
    "Service": ("/api/v1", "services"),
    "ConfigMap": ("/api/v1", "configmaps"),
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


class ConflictError(Exception):
    """A write based on a stale read (HTTP 409): read again and decide again."""


class Kube:
    """Thin synchronous client; every call is one HTTP request, safe to call from worker threads.
    `client`: an ApiClient to use (default: in-cluster config, else $KUBECONFIG); `transport`
    replaces the HTTP layer altogether (tests use an in-memory API server)."""

    def __init__(
        self, field_manager: str, client: ApiClient | None = None, transport: Transport | None = None
    ):
        self.field_manager = field_manager
        self._transport = transport
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

    def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One API request; the decoded JSON answer. Errors raise ApiException."""
        API_REQUESTS.labels(method).inc()
        if self._transport is not None:
            return self._transport(method, url, body, query or [], content_type)
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        client = self.client
        token = client.configuration.get_api_key_with_prefix("authorization")
        if token:  # some client releases look the token up under another key than their loader stores it
            headers["authorization"] = token
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

    def apply(self, manifest: Obj) -> Obj:
        """Server-side apply with our one field manager: idempotent, and it takes back drifted fields."""
        meta = manifest["metadata"]
        url = path(manifest["kind"], meta["namespace"], meta["name"])
        query = [("fieldManager", self.field_manager), ("force", "true")]
        applied: Obj = self.request("PATCH", url, manifest, query, "application/apply-patch+yaml")
        return applied

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            result: Obj = self.request("GET", path(kind, namespace, name))
            return result
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def list_labeled(self, kind: str, namespace: str, labels: dict[str, str]) -> list[Obj]:
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        result = self.request("GET", path(kind, namespace), query=[("labelSelector", selector)])
        items: list[Obj] = result.get("items", [])
        return items

    def delete(self, kind: str, namespace: str, name: str) -> None:
        body = {"propagationPolicy": "Foreground"}
        try:
            self.request("DELETE", path(kind, namespace, name), body)
        except ApiException as error:
            if error.status != 404:
                raise

    def create(self, manifest: Obj) -> Obj | None:
        """Create, or None when it already exists (a name that encodes intent makes this idempotent)."""
        try:
            created: Obj = self.request(
                "POST", path(manifest["kind"], manifest["metadata"]["namespace"]), manifest
            )
            return created
        except ApiException as error:
            if error.status == 409:
                return None
            raise

    def replace_status(self, obj: Obj, status: Obj) -> None:
        """Write the whole status of `obj` as read; ConflictError when it changed since (optimistic
        concurrency: no other writer's update is ever lost). An object deleted meanwhile is fine."""
        meta = obj["metadata"]
        body = {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "resourceVersion": meta["resourceVersion"],
            },
            "status": status,
        }
        try:
            self.request("PUT", path(obj["kind"], meta["namespace"], meta["name"], "status"), body)
        except ApiException as error:
            if error.status == 409:
                raise ConflictError(f"{obj['kind']} {meta['namespace']}/{meta['name']} changed") from error
            if error.status != 404:
                raise

    def crd_exists(self, name: str) -> bool:
        try:
            self.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            return True
        except ApiException as error:
            if error.status in (403, 404):
                return False
            raise

    def prune(self, kind: str, children: list[Obj], wanted: set[str]) -> list[str]:
        """Delete the listed children whose names the renderer no longer wants; returns their names."""
        gone = []
        for item in children:
            meta = item["metadata"]
            if meta["name"] not in wanted and not meta.get("deletionTimestamp"):
                self.delete(kind, meta["namespace"], meta["name"])
                gone.append(meta["name"])
        return gone
