"""One performance check: payload-log predictions + labels -> PerformanceResult (kubeloop.api.performance).

Realized metrics (with seeded bootstrap intervals) on the matured, labelled predictions; the CBPE
estimate (binary, with a score) calibrated on those same labelled rows and applied to every
prediction of the window, so it covers the predictions whose labels have not come yet and can be
reconciled with the realized value once they do; per-group metrics and fairness per sensitive
attribute. NaN (undefined) values are reported as null.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kubeloop.api.performance import (
    LOWER_IS_BETTER,
    FairnessValue,
    GroupPerformance,
    MetricValue,
    PerformanceConfig,
    PerformanceResult,
)
from kubeloop.contracts.payload_log import (
    OUTPUT_PREFIX,
    REQUEST_ID_COLUMN,
    ROW_COLUMN,
    TIMESTAMP_COLUMN,
    attribute_column,
)
from kubeloop_drift.errors import SchemaMismatchError
from kubeloop_drift.performance.bootstrap import bootstrap_interval
from kubeloop_drift.performance.cbpe import CBPE
from kubeloop_drift.performance.groups import fairness, per_group
from kubeloop_drift.performance.join import Joined, Predictions, join_labels
from kubeloop_drift.performance.labels import LabelSet, prediction_keys
from kubeloop_drift.performance.metrics import metric_function

Array = np.ndarray[Any, Any]


def payload_columns(config: PerformanceConfig) -> list[str]:
    """The payload-log columns a performance check reads."""
    outputs = [OUTPUT_PREFIX + config.prediction, *([OUTPUT_PREFIX + config.score] if config.score else [])]
    attributes = [attribute_column(name) for name in config.sensitive_attributes]
    return [TIMESTAMP_COLUMN, REQUEST_ID_COLUMN, ROW_COLUMN, *outputs, *attributes]


def predictions_from_payload(table: pa.Table, config: PerformanceConfig) -> Predictions:
    """The window's predictions (rows of the shadow track are someone else's answers: left out)."""
    for needed in (REQUEST_ID_COLUMN, OUTPUT_PREFIX + config.prediction):
        if needed not in table.column_names:
            raise SchemaMismatchError(f"the payload log has no {needed!r} column")
    if "_track" in table.column_names:
        table = table.filter(pc.fill_null(pc.not_equal(table["_track"], "shadow"), True))
    rows = table[ROW_COLUMN] if ROW_COLUMN in table.column_names else pa.nulls(table.num_rows, pa.int32())
    stamps = pc.cast(pc.cast(table[TIMESTAMP_COLUMN], pa.timestamp("ms", tz="UTC")), pa.int64())
    score = None
    if config.score is not None:
        if OUTPUT_PREFIX + config.score not in table.column_names:
            raise SchemaMismatchError(f"the payload log has no {OUTPUT_PREFIX + config.score!r} column")
        score = _numbers(table[OUTPUT_PREFIX + config.score])
    groups = {}
    for name in config.sensitive_attributes:
        column = attribute_column(name)
        values = table[column].to_numpy(zero_copy_only=False) if column in table.column_names else None
        groups[name] = values if values is not None else np.full(table.num_rows, None, object)
    return Predictions(
        key=prediction_keys(table[REQUEST_ID_COLUMN], rows),
        timestamp_ms=stamps.to_numpy(zero_copy_only=False).astype(np.float64),
        predicted=table[OUTPUT_PREFIX + config.prediction].to_numpy(zero_copy_only=False),
        score=score,
        groups=groups,
    )


def _numbers(column: pa.ChunkedArray) -> Array:
    return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), np.float64)


def _like_labels(predicted: Array, labels: Array) -> Array:
    """Predictions in the labels' type (numbers as float64, anything else as text)."""
    if labels.dtype.kind == "f":
        return np.asarray(predicted, np.float64)
    return np.array([str(value) for value in predicted], object)


def evaluate(
    predictions: Predictions, labels: LabelSet, config: PerformanceConfig, now_ms: float
) -> PerformanceResult:
    """Everything ``config`` asks for, on one window of predictions."""
    joined = join_labels(predictions, labels, now_ms, _maturity_ms(config.maturity))
    y_true = joined.labels
    y_pred = _like_labels(joined.predictions.predicted, y_true)
    score = joined.predictions.score
    names = config.metric_names()
    values = [_realized(config, name, y_true, y_pred, score) for name in names]
    values += _estimated(config, joined, predictions)
    groups: list[GroupPerformance] = []
    fair: list[FairnessValue] = []
    for attribute in config.sensitive_attributes:
        group_values = joined.predictions.groups[attribute]
        results = per_group(
            attribute, group_values, config.task, names, y_true, y_pred, score, config.min_group_size
        )
        groups += [
            GroupPerformance(
                attribute=r.attribute,
                group=r.group,
                rows=r.rows,
                included=r.included,
                metrics={k: _finite(v) for k, v in r.metrics.items()},
            )
            for r in results
        ]
        if config.task == "binary":
            found = fairness(y_true, y_pred, results, group_values)
            for limit in config.fairness:
                value = _finite(found[limit.metric])
                breached = value is not None and value > limit.max
                fair.append(FairnessValue(attribute=attribute, metric=limit.metric, value=value,
                                          threshold=limit.max, breached=breached))  # fmt: skip
    breaches = [f"{m.source} {m.metric} {m.value:.4g}" for m in values if m.breached and m.value is not None]
    breaches += [
        f"{f.metric} of {f.attribute} {f.value:.4g}" for f in fair if f.breached and f.value is not None
    ]
    return PerformanceResult(
        task=config.task,
        predictions=len(predictions.timestamp_ms),
        matured=joined.matured,
        labelled=joined.labelled,
        early_labels=joined.early,
        label_coverage=_finite(joined.coverage),
        metrics=values,
        groups=groups,
        fairness=fair,
        degraded=bool(breaches),
        message="; ".join(breaches) or None,
    )


def _realized(
    config: PerformanceConfig, name: str, y_true: Array, y_pred: Array, score: Array | None
) -> MetricValue:
    function = metric_function(config.task, name)
    value = _finite(function(y_true, y_pred, score)) if len(y_true) else None

    def statistic(index: Array) -> float:
        return function(y_true[index], y_pred[index], None if score is None else score[index])

    low, high = bootstrap_interval(statistic, len(y_true), config.bootstrap_samples, config.seed)
    threshold = config.threshold_of(name)
    return MetricValue(metric=name, source="realized", value=value, lower=_finite(low), upper=_finite(high),
                       threshold=threshold, breached=_breached(name, value, threshold))  # fmt: skip


def _estimated(config: PerformanceConfig, joined: Joined, window: Predictions) -> list[MetricValue]:
    """CBPE over the whole window, calibrated on its labelled predictions (binary with a score only)."""
    reference_scores = joined.predictions.score
    if config.task != "binary" or reference_scores is None or window.score is None:
        return []
    reference_labels = np.asarray(joined.labels, np.float64) if joined.labels.dtype.kind == "f" else None
    if reference_labels is None or len(np.unique(reference_labels)) < 2:
        return []  # nothing to calibrate on yet: no estimate
    estimator = CBPE.fit(reference_scores, reference_labels)
    estimates = estimator.estimate(window.score, np.asarray(window.predicted, np.float64))
    names = [name for name in config.metric_names() if name in estimates]
    return [
        MetricValue(metric=name, source="estimated", value=_finite(estimates[name]),
                    threshold=config.threshold_of(name),
                    breached=_breached(name, _finite(estimates[name]), config.threshold_of(name)))
        for name in names
    ]  # fmt: skip


def _breached(metric: str, value: float | None, threshold: float | None) -> bool:
    if value is None or threshold is None:
        return False
    return value > threshold if metric in LOWER_IS_BETTER else value < threshold


def _maturity_ms(text: str) -> float:
    if text == "0":
        return 0.0
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[text[-1]]
    return int(text[:-1]) * unit * 1000.0


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
