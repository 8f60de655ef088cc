"""Valid resources to start from; tests change one thing at a time."""

from __future__ import annotations

import copy
from typing import Any

API = "kubeloop.io/v1alpha1"


def training_job(name: str = "train", **spec: Any) -> dict[str, Any]:
    base = {
        "dataset": {"uri": "s3://data/train.parquet"},
        "register": {"modelName": "churn", "alias": "challenger"},
    }
    return {"apiVersion": API, "kind": "TrainingJob", "metadata": {"name": name}, "spec": {**base, **spec}}


def model_deployment(name: str = "serve", **spec: Any) -> dict[str, Any]:
    base = {"model": {"uri": "models:/churn/1"}, "payloadLogging": {"sinkUri": "s3://payloads"}}
    return {
        "apiVersion": API,
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {**base, **spec},
    }


def drift_monitor(name: str = "watch", target: str = "serve", **spec: Any) -> dict[str, Any]:
    base = {"target": {"modelDeployment": target}, "reference": {"uri": "s3://data/ref.parquet"}}
    return {"apiVersion": API, "kind": "DriftMonitor", "metadata": {"name": name}, "spec": {**base, **spec}}


def with_change(manifest: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy with spec field `path` (dotted) set to `value`."""
    out = copy.deepcopy(manifest)
    node = out["spec"]
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return out
