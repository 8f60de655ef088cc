"""What a training pod needs to read a versioned dataset: lakeFS or git credentials from the Secret the
spec names, by reference (the values never pass through the operator), and a Feast feature repository
from the ConfigMap the spec names."""

from __future__ import annotations

from typing import Any

from kubeloop.api.data_sources import (
    GIT_PASSWORD,
    GIT_PASSWORD_ENV,
    GIT_USERNAME,
    GIT_USERNAME_ENV,
    LAKEFS_ACCESS_KEY_ID,
    LAKEFS_ACCESS_KEY_ID_ENV,
    LAKEFS_SECRET_ACCESS_KEY,
    LAKEFS_SECRET_ACCESS_KEY_ENV,
)
from kubeloop.api.training import Dataset


def data_source_env(dataset: Dataset | None) -> list[dict[str, Any]]:
    if dataset is not None and dataset.lakefs is not None:
        secret = dataset.lakefs.secret_ref.name
        keys = (
            (LAKEFS_ACCESS_KEY_ID_ENV, LAKEFS_ACCESS_KEY_ID),
            (LAKEFS_SECRET_ACCESS_KEY_ENV, LAKEFS_SECRET_ACCESS_KEY),
        )
    elif dataset is not None and dataset.dvc is not None and dataset.dvc.secret_ref is not None:
        secret = dataset.dvc.secret_ref.name
        keys = ((GIT_USERNAME_ENV, GIT_USERNAME), (GIT_PASSWORD_ENV, GIT_PASSWORD))
    else:
        return []
    return [
        {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for variable, key in keys
    ]


def data_source_volumes(dataset: Dataset | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts): a Feast source's ConfigMap, read-only at its ``repo``."""
    if dataset is None or dataset.feast is None or dataset.feast.config_map_ref is None:
        return [], []
    ref = dataset.feast.config_map_ref
    config_map: dict[str, Any] = {"name": ref.name}
    if ref.optional is not None:
        config_map["optional"] = ref.optional
    volume = {"name": "feast-repo", "configMap": config_map}
    return [volume], [{"name": "feast-repo", "mountPath": dataset.feast.repo, "readOnly": True}]
