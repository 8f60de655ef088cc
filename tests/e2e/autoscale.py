"""A load step against a ModelDeployment on real pods and its HPA's replica counts over time, for the
in-flight autoscaling e2e test and `make bench-autoscale` (the same step, CPU vs in-flight metric).

The model is the serving benchmark's small CNN (bench/serving_models.py, a few ms of CPU per request),
served from the in-cluster S3 server; the load is `concurrency` keep-alive clients sending back to back
through the Service's node port, so the requests in flight are about `concurrency` while it lasts.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.serving_models import request_body, small_cnn
from kubeloop.contracts.autoscaling import pods_metric_path
from kubeloop.loadgen import SteadyLoad
from tests.e2e.loop import API, S3_ENV
from tests.e2e.platform import ROOT, Platform
from tests.fixtures.cluster import wait_for

ADAPTER_API = "v1beta1.custom.metrics.k8s.io"
SAMPLE_SECONDS = 5  # how often the HPA is read (its controller syncs every 15 s)
MAX_REPLICAS = 4  # four servers of 250m CPU requests fit the 2-core node beside the platform


def custom_metrics_available(platform: Platform) -> bool:
    found = platform.kubectl.run("get", "apiservice", ADAPTER_API, "-o", "json", check=False)
    if found.returncode != 0:
        return False
    conditions = json.loads(found.stdout).get("status", {}).get("conditions") or []
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)


def ensure_adapter(platform: Platform) -> None:
    """prometheus-adapter on the local node (hack/platform.sh prometheus-adapter: idempotent, ~3 min the first
    time it builds the binary); on an existing cluster it must be there already."""
    if custom_metrics_available(platform):
        return
    assert platform.target.mode == "local", (
        "no custom metrics API on this cluster: KUBELOOP_PROMETHEUS_ADAPTER=1 hack/platform.sh up-existing"
    )
    env = {**os.environ, "KUBECONFIG": str(platform.kubeconfig)}
    subprocess.run([ROOT / "hack/platform.sh", "prometheus-adapter"], check=True, env=env, timeout=1200)
    wait_for(lambda: custom_metrics_available(platform), 180, interval=3, what=f"APIService {ADAPTER_API}")


def upload_model(platform: Platform, namespace: str) -> tuple[str, bytes]:
    """The small CNN in the in-cluster S3 server: its URI, and one request for it."""
    with tempfile.TemporaryDirectory() as directory:
        model = small_cnn(Path(directory))
        uri = f"s3://kubeloop/models/{namespace}/cnn.onnx"
        platform.s3().put(str(model.path), uri)
        return uri, request_body(model)


def model_deployment(name: str, uri: str, autoscaling: dict[str, Any]) -> dict[str, Any]:
    spec = {
        "model": {"uri": uri},
        "replicas": {"min": 1, "max": MAX_REPLICAS},
        "resources": {"cpu": "250m", "memory": "512Mi"},
        "envFrom": S3_ENV,
        "autoscaling": autoscaling,
    }
    return {"apiVersion": API, "kind": "ModelDeployment", "metadata": {"name": name}, "spec": spec}


def ready(status: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))


def scaling(status: dict[str, Any]) -> dict[str, Any] | None:
    """The Autoscaling condition once it is True: the HPA reads its metric and can scale."""
    found = next((c for c in status.get("conditions", []) if c["type"] == "Autoscaling"), None)
    return found if found is not None and found["status"] == "True" else None


def number(quantity: str | int | float | None) -> float | None:
    """A Kubernetes quantity as a number (1500m -> 1.5)."""
    if quantity is None:
        return None
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


@dataclass
class Timeline:
    """The HPA of one ModelDeployment, read every few seconds: replicas and the metric it scales on."""

    platform: Platform
    name: str
    namespace: str
    started: float = field(default_factory=time.monotonic)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def sample(self, phase: str) -> dict[str, Any]:
        hpa = self.platform.kubectl.get("hpa", self.name, self.namespace) or {}
        status = hpa.get("status") or {}
        current = (status.get("currentMetrics") or [{}])[0]
        if "pods" in current:
            value = number(current["pods"]["current"].get("averageValue"))
        else:
            value = (current.get("resource") or {}).get("current", {}).get("averageUtilization")
        row = {
            "t": round(time.monotonic() - self.started, 1),
            "phase": phase,
            "current": status.get("currentReplicas"),
            "desired": status.get("desiredReplicas"),
            "metric": value,
            "busy_pods": self.busy_pods(),
        }
        self.samples.append(row)
        return row

    def busy_pods(self) -> int | None:
        """How many of its pods have requests in flight (the adapter's per-pod gauge): whether the
        replicas added get traffic, or the clients' keep-alive connections stay on the first pod."""
        try:
            values = custom_metric(self.platform, self.namespace)
        except (AssertionError, KeyError, ValueError):  # kubectl failed, or an answer without items
            return None
        return sum(1 for pod, value in values.items() if pod.startswith(f"{self.name}-") and value > 0)

    def watch(self, seconds: float, phase: str, until: Any = None) -> None:
        """Sample for `seconds`, or until `until(row)` is true."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            row = self.sample(phase)
            if until is not None and until(row):
                return
            time.sleep(SAMPLE_SECONDS)

    def first(self, phase: str, check: Any) -> float | None:
        """Seconds from the phase's first sample to the first one passing `check`."""
        rows = [r for r in self.samples if r["phase"] == phase]
        hit = next((r for r in rows if check(r)), None)
        return None if hit is None or not rows else round(hit["t"] - rows[0]["t"], 1)


def custom_metric(platform: Platform, namespace: str) -> dict[str, float]:
    """What the HPA reads: the in-flight metric of every pod of the namespace, from the custom metrics API."""
    raw = platform.kubectl.run("get", "--raw", pods_metric_path(namespace)).stdout
    return {i["describedObject"]["name"]: number(i["value"]) or 0.0 for i in json.loads(raw)["items"]}


def load_step(
    platform: Platform,
    namespace: str,
    name: str,
    body: bytes,
    concurrency: int,
    load_seconds: float,
    settle_seconds: float,
) -> dict[str, Any]:
    """Idle, then `concurrency` clients for `load_seconds`, then idle until the HPA is back at one replica
    (at most `settle_seconds`); the replica counts over time and what the load saw."""
    url = f"{platform.service_url(name, namespace)}/v2/models/{name}/infer"
    timeline = Timeline(platform, name, namespace)
    timeline.watch(15, "before")
    with SteadyLoad(url, body, rate=100_000, connections=concurrency, timeout=30) as load:
        timeline.watch(load_seconds, "load")
        load_summary = load.result.summary() | {"achieved_rps": round(load.rps, 1)}
    timeline.watch(settle_seconds, "after", until=lambda row: row["current"] == 1)
    return {
        "load": load_summary | {"concurrency": concurrency, "seconds": load_seconds},
        "seconds_to_first_scale_up": timeline.first("load", lambda r: (r["desired"] or 0) > 1),
        "seconds_to_peak": timeline.first(
            "load", lambda r: r["current"] == max(s["current"] or 0 for s in timeline.samples)
        ),
        "peak_replicas": max(int(r["current"] or 0) for r in timeline.samples),
        "peak_busy_pods": max(int(r["busy_pods"] or 0) for r in timeline.samples),
        "seconds_to_scale_back": timeline.first("after", lambda r: r["current"] == 1),
        "timeline": timeline.samples,
    }
