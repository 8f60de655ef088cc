"""What a training pod needs to read a versioned dataset: lakeFS credentials from the Secret the spec
names, by reference (the values never pass through the operator)."""

from __future__ import annotations

from typing import Any

from kubeloop.api.data_sources import (
    LAKEFS_ACCESS_KEY_ID,
    LAKEFS_ACCESS_KEY_ID_ENV,
    LAKEFS_SECRET_ACCESS_KEY,
    LAKEFS_SECRET_ACCESS_KEY_ENV,
)
from kubeloop.api.training import Dataset


def data_source_env(dataset: Dataset | None) -> list[dict[str, Any]]:
    if dataset is None or dataset.lakefs is None:
        return []
    secret = dataset.lakefs.secret_ref.name
    return [
        {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for variable, key in (
            (LAKEFS_ACCESS_KEY_ID_ENV, LAKEFS_ACCESS_KEY_ID),
            (LAKEFS_SECRET_ACCESS_KEY_ENV, LAKEFS_SECRET_ACCESS_KEY),
        )
    ]
