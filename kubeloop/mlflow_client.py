"""An MLflow client for one server, without request-header plugins that kubeloop never uses.

At a process's first REST call MLflow imports every installed ``mlflow.request_header_provider``
entry point. Feast (in the trainer's ``data`` extra) registers one that adds a header only inside
Feast's own ``mlflow_token_scope``, which kubeloop never enters. Loading it imports all of Feast
(about 9 s on two cores) and sets ``PROMETHEUS_MULTIPROC_DIR`` for the process and every child
it starts.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from importlib.metadata import EntryPoint
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

HEADER_PROVIDERS = "mlflow.request_header_provider"
REGISTRY_MODULE = "mlflow.tracking.request_header.registry"
UNUSED_PROVIDERS = frozenset({"feast.infra.data_sources.mlflow.auth"})  # by module


def used_providers(entry_points: Iterable[EntryPoint]) -> list[EntryPoint]:
    return [entry_point for entry_point in entry_points if entry_point.module not in UNUSED_PROVIDERS]


def load_header_providers() -> None:
    """Import MLflow's header-provider registry without `UNUSED_PROVIDERS`.

    Call it before a process's first MLflow REST call; once the registry is imported (by this or
    by MLflow itself) it does nothing.
    """
    if REGISTRY_MODULE in sys.modules:
        return
    from mlflow.utils import plugins

    every = plugins.get_entry_points

    def wanted(group: str) -> list[EntryPoint]:
        found = every(group)
        return used_providers(found) if group == HEADER_PROVIDERS else found

    plugins.get_entry_points = wanted  # the registry reads it once, at its import
    try:
        importlib.import_module(REGISTRY_MODULE)
    finally:
        plugins.get_entry_points = every


def connect(tracking_uri: str | None) -> MlflowClient:
    """A client whose tracking and registry server is ``tracking_uri`` (None: ``MLFLOW_TRACKING_URI``)."""
    from mlflow import MlflowClient

    load_header_providers()
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
