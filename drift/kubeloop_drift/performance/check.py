"""The performance part of ``kubeloop drift check``: the payload-log window's predictions, the labels,
and ``evaluate``. Labels that cannot be found yet are not an error: the result says so (coverage 0).
Without ``labelsUri``, labels are read where the servers of the payload log's sink write those posted
to their feedback endpoint (kubeloop.contracts.labels)."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from kubeloop.api.performance import PerformanceConfig, PerformanceResult
from kubeloop.contracts.labels import labels_root, model_labels
from kubeloop_drift.errors import DriftError, UsageError
from kubeloop_drift.payload_log import PayloadWindow
from kubeloop_drift.performance.evaluate import evaluate, payload_columns, predictions_from_payload
from kubeloop_drift.performance.labels import LabelSet, read_labels


def no_labels() -> LabelSet:
    return LabelSet(
        key=pa.array([], pa.string()),
        request_id=[],
        row=np.zeros(0, np.int64),
        label=np.zeros(0, np.float64),
        timestamp_ms=np.zeros(0, np.float64),
    )


def check_performance(
    window: PayloadWindow | None, config: PerformanceConfig, now_ms: float | None = None
) -> PerformanceResult:
    """Realized, estimated, per-group and fairness results for the window's predictions."""
    if window is None:
        raise UsageError("performance needs the payload log (--payload-log): labels join on its request ids")
    try:
        predictions = predictions_from_payload(window.read(payload_columns(config)), config)
    except DriftError as error:  # e.g. no such output column: reported, the drift verdict stands
        return PerformanceResult(
            task=config.task,
            predictions=0,
            matured=0,
            labelled=0,
            error=f"cannot measure performance: {error}",
        )
    note = None
    source = config.labels_uri or model_labels(
        labels_root(window.description["payload_log"]), window.description["model"]
    )
    try:
        labels = read_labels(source)
    except DriftError as error:
        labels, note = no_labels(), f"no labels: {error}"
    result = evaluate(predictions, labels, config, time.time() * 1000 if now_ms is None else now_ms)
    if note is not None:
        result.message = "; ".join(part for part in (result.message, note) if part)
    return result
