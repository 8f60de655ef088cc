"""Operator start-up: every kopf setting in one place, metrics endpoint, optional CRDs, the Context."""

from __future__ import annotations

import logging
from typing import Any

import kopf
import prometheus_client

from kubeloop_operator.context import Context
from kubeloop_operator.settings import OperatorSettings

SERVICE_MONITOR_CRD = "servicemonitors.monitoring.coreos.com"


def configure(settings: kopf.OperatorSettings, ours: OperatorSettings) -> None:
    settings.peering.standalone = True
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kubeloop.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="kubeloop.io", key="last-handled-configuration"
    )
    settings.persistence.finalizer = "kubeloop.io/finalizer"
    settings.execution.max_workers = ours.worker_threads
    settings.scanning.disabled = not ours.scanning
    settings.posting.level = logging.INFO
    settings.posting.loggers = False  # Events are our explicit transitions, not kopf's per-handler log lines
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.batching.worker_limit = 1000


@kopf.on.startup(retries=10, backoff=3, timeout=120)
def start(settings: kopf.OperatorSettings, logger: kopf.Logger, memo: kopf.Memo, **_: Any) -> None:
    ours = OperatorSettings()
    configure(settings, ours)
    if ours.metrics_port:
        prometheus_client.start_http_server(ours.metrics_port)
    context = Context.create(ours)
    context.service_monitors = (
        ours.service_monitors
        if ours.service_monitors is not None
        else context.kube.crd_exists(SERVICE_MONITOR_CRD)
    )
    memo["context"] = context  # every object's memo is a copy of this one
    logger.info(f"kubeloop operator started; ServiceMonitors {'on' if context.service_monitors else 'off'}")
