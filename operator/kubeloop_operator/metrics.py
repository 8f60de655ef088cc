"""The operator's Prometheus metrics (prefix kubeloop_, base units, low-cardinality labels).

Series labelled by an object are recorded through ObjectSeries, which removes them with the object.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from kubeloop.api.drift import FeatureResult
from kubeloop.api.performance import PerformanceResult
from kubeloop.api.progress import TrainingProgress

RECONCILES = Counter(
    "kubeloop_operator_reconciles_total", "Reconciliations by kind and result.", ["kind", "result"]
)
API_REQUESTS = Counter(
    "kubeloop_operator_api_requests_total",
    "Requests the reconciles sent to the API server (kopf's own not counted), by HTTP method.",
    ["method"],
)
RECONCILE_SECONDS = Histogram(
    "kubeloop_operator_reconcile_duration_seconds", "Time to reconcile one resource.", ["kind"]
)

TRAINING_PHASE = Gauge(
    "kubeloop_trainingjob_phase",
    "1 for the current phase of each TrainingJob.",
    ["namespace", "trainingjob", "phase"],
)
TRAINING_GPUS = Gauge(
    "kubeloop_trainingjob_gpus_requested",
    "GPUs requested by a TrainingJob (all workers).",
    ["namespace", "trainingjob"],
)
TRAINING_PROGRESS = Gauge(
    "kubeloop_training_progress_percent",
    "How far a TrainingJob is, in percent (the trainer's latest report).",
    ["namespace", "trainingjob"],
)
TRAINING_ETA = Gauge(
    "kubeloop_training_eta_seconds",
    "Estimated seconds until a TrainingJob's training ends (the trainer's latest report).",
    ["namespace", "trainingjob"],
)
TRAINING_EPOCH = Gauge(
    "kubeloop_training_epoch",
    "Epochs a TrainingJob has finished (the trainer's latest report).",
    ["namespace", "trainingjob"],
)
TRAINING_DURATION = Histogram(
    "kubeloop_trainingjob_duration_seconds",
    "Wall time of finished training runs.",
    ["namespace", "phase"],
    buckets=(30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400),
)
TRAINING_FAILURES = Counter(
    "kubeloop_trainingjob_failures_total", "Failed training runs by reason.", ["namespace", "reason"]
)

SERVING_READY_REPLICAS = Gauge(
    "kubeloop_modeldeployment_ready_replicas", "Ready server replicas.", ["namespace", "modeldeployment"]
)
SERVING_REPLICAS = Gauge(
    "kubeloop_modeldeployment_replicas", "Server replicas (all tracks).", ["namespace", "modeldeployment"]
)
SERVING_MIN_REPLICAS = Gauge(
    "kubeloop_modeldeployment_min_replicas", "Autoscaler minimum.", ["namespace", "modeldeployment"]
)
SERVING_MAX_REPLICAS = Gauge(
    "kubeloop_modeldeployment_max_replicas", "Autoscaler maximum.", ["namespace", "modeldeployment"]
)
SERVING_TARGET_CPU = Gauge(
    "kubeloop_modeldeployment_target_cpu_utilization_ratio",
    "Autoscaler CPU target (0-1).",
    ["namespace", "modeldeployment"],
)
SERVING_MODEL_VERSION_CHANGES = Counter(
    "kubeloop_modeldeployment_version_changes_total",
    "Rollouts caused by a registry alias moving.",
    ["namespace", "modeldeployment"],
)
SERVING_CANARY_WEIGHT = Gauge(
    "kubeloop_modeldeployment_canary_weight_percent",
    "Percent of requests the stable servers forward to the canary.",
    ["namespace", "modeldeployment"],
)
SERVING_ROLLOUT_PHASE = Gauge(
    "kubeloop_modeldeployment_rollout_phase",
    "1 for the current phase of each ModelDeployment's canary rollout.",
    ["namespace", "modeldeployment", "phase"],
)
SERVING_CANARY_CHECK = Gauge(
    "kubeloop_modeldeployment_canary_check_value",
    "Last value of each canary check (see status.rollout.checks for thresholds).",
    ["namespace", "modeldeployment", "check"],
)

DRIFT_SCORE = Gauge(
    "kubeloop_drift_score", "Latest drift score per feature.", ["namespace", "monitor", "feature", "test"]
)
DRIFT_FEATURE_DRIFTED = Gauge(
    "kubeloop_drift_feature_drifted",
    "1 when the feature drifted at the latest check.",
    ["namespace", "monitor", "feature"],
)
DRIFT_SHARE = Gauge(
    "kubeloop_drift_share", "Share of features drifted at the latest check.", ["namespace", "monitor"]
)
DRIFT_DETECTED = Gauge(
    "kubeloop_drift_detected", "1 when the latest check found dataset drift.", ["namespace", "monitor"]
)
DRIFT_CHECKS = Counter(
    "kubeloop_drift_checks_total", "Drift checks by result.", ["namespace", "monitor", "result"]
)
DRIFT_RETRAINS = Counter(
    "kubeloop_drift_retrains_total", "TrainingJobs created on drift.", ["namespace", "monitor"]
)

MONITOR_PERFORMANCE = Gauge(
    "kubeloop_monitor_performance",
    "Latest performance of the monitored model: realized (from labels) or estimated (CBPE).",
    ["namespace", "monitor", "metric", "source"],
)
MONITOR_PERFORMANCE_THRESHOLD = Gauge(
    "kubeloop_monitor_performance_threshold",
    "The spec's threshold per metric: a minimum (accuracy, f1, roc_auc) or a maximum (mae, rmse).",
    ["namespace", "monitor", "metric"],
)
MONITOR_LABEL_COVERAGE = Gauge(
    "kubeloop_monitor_label_coverage",
    "Share of matured predictions that have a label (0..1).",
    ["namespace", "monitor"],
)
MONITOR_FAIRNESS = Gauge(
    "kubeloop_monitor_fairness",
    "Latest fairness difference between groups (the largest over the sensitive attributes).",
    ["namespace", "monitor", "metric"],
)
MONITOR_FAIRNESS_THRESHOLD = Gauge(
    "kubeloop_monitor_fairness_threshold",
    "The spec's largest allowed fairness difference.",
    ["namespace", "monitor", "metric"],
)
PERFORMANCE_METRICS = (
    MONITOR_PERFORMANCE, MONITOR_PERFORMANCE_THRESHOLD, MONITOR_LABEL_COVERAGE, MONITOR_FAIRNESS,
    MONITOR_FAIRNESS_THRESHOLD,
)  # fmt: skip

PHASES = ("Pending", "Suspended", "Running", "Succeeded", "Failed")
ROLLOUT_PHASES = (
    "Idle", "Progressing", "Paused", "Inconclusive", "Promoting", "Promoted", "RolledBack", "Aborted"
)  # fmt: skip
Key = tuple[str, str, str]  # (kind, namespace, name)
Series = tuple[MetricWrapperBase, tuple[str, ...]]


class ObjectSeries:
    """Every labelled series recorded for an object, so that `forget` removes them all."""

    def __init__(self) -> None:
        self._series: dict[Key, set[Series]] = {}
        self._lock = threading.Lock()

    def set_gauge(self, key: Key, gauge: Gauge, labels: tuple[str, ...], value: float) -> None:
        gauge.labels(*labels).set(value)
        self._add(key, gauge, labels)

    def inc_counter(self, key: Key, counter: Counter, labels: tuple[str, ...]) -> None:
        counter.labels(*labels).inc()
        self._add(key, counter, labels)

    def _add(self, key: Key, metric: MetricWrapperBase, labels: tuple[str, ...]) -> None:
        with self._lock:
            self._series.setdefault(key, set()).add((metric, labels))

    def keep_only(self, key: Key, metrics: Iterable[MetricWrapperBase], keep: set[Series]) -> None:
        """Remove this object's series of `metrics` that are not in `keep` (e.g. a feature dropped)."""
        wanted = set(metrics)
        with self._lock:
            stale = {s for s in self._series.get(key, set()) if s[0] in wanted and s not in keep}
            self._series.get(key, set()).difference_update(stale)
        for metric, labels in stale:
            with contextlib.suppress(KeyError):
                metric.remove(*labels)

    def forget(self, key: Key) -> None:
        with self._lock:
            series = self._series.pop(key, set())
        for metric, labels in series:
            with contextlib.suppress(KeyError):
                metric.remove(*labels)


def record_training_progress(series: ObjectSeries, key: Key, progress: TrainingProgress | None) -> None:
    """The report's numbers as gauges (a number it lacks leaves its gauge as it was)."""
    if progress is None:
        return
    for gauge, value in (
        (TRAINING_PROGRESS, progress.percent),
        (TRAINING_ETA, progress.eta_seconds),
        (TRAINING_EPOCH, progress.epoch),
    ):
        if value is not None:
            series.set_gauge(key, gauge, key[1:], value)


def record_training_phase(series: ObjectSeries, key: Key, phase: str) -> None:
    for candidate in PHASES:
        series.set_gauge(key, TRAINING_PHASE, (key[1], key[2], candidate), 1 if candidate == phase else 0)


def record_drift(
    series: ObjectSeries, key: Key, features: list[FeatureResult], share: float | None, detected: bool
) -> None:
    namespace, monitor = key[1], key[2]
    keep: set[Series] = set()
    for feature in features:
        score = (DRIFT_SCORE, (namespace, monitor, feature.name, feature.test))
        drifted = (DRIFT_FEATURE_DRIFTED, (namespace, monitor, feature.name))
        series.set_gauge(key, DRIFT_SCORE, score[1], feature.score)
        series.set_gauge(key, DRIFT_FEATURE_DRIFTED, drifted[1], 1 if feature.drifted else 0)
        keep |= {score, drifted}
    series.keep_only(key, (DRIFT_SCORE, DRIFT_FEATURE_DRIFTED), keep)
    if share is not None:
        series.set_gauge(key, DRIFT_SHARE, (namespace, monitor), share)
        series.set_gauge(key, DRIFT_DETECTED, (namespace, monitor), 1 if detected else 0)


def record_performance(series: ObjectSeries, key: Key, performance: PerformanceResult | None) -> None:
    """The kubeloop_monitor_* gauges from status.performance; a value that is undefined (no labels
    yet) has no series, and none at all without performance."""
    labels = (key[1], key[2])
    keep: set[Series] = set()

    def gauge(metric: Gauge, values: tuple[str, ...], value: float | None) -> None:
        if value is not None:
            series.set_gauge(key, metric, values, value)
            keep.add((metric, values))

    if performance is not None:
        gauge(MONITOR_LABEL_COVERAGE, labels, performance.label_coverage)
        for metric in performance.metrics:
            gauge(MONITOR_PERFORMANCE, (*labels, metric.metric, metric.source), metric.value)
            gauge(MONITOR_PERFORMANCE_THRESHOLD, (*labels, metric.metric), metric.threshold)
        worst: dict[str, float] = {}
        for fair in performance.fairness:
            if fair.value is not None:
                worst[fair.metric] = max(worst.get(fair.metric, fair.value), fair.value)
            gauge(MONITOR_FAIRNESS_THRESHOLD, (*labels, fair.metric), fair.threshold)
        for name, value in worst.items():
            gauge(MONITOR_FAIRNESS, (*labels, name), value)
    series.keep_only(key, PERFORMANCE_METRICS, keep)


def record_rollout(
    series: ObjectSeries, key: Key, phase: str | None, weight: int, checks: dict[str, float]
) -> None:
    """Weight, phase and check values of a canary rollout; none of it without a canary."""
    labels = (key[1], key[2])
    metrics: tuple[MetricWrapperBase, ...] = (
        SERVING_CANARY_WEIGHT,
        SERVING_ROLLOUT_PHASE,
        SERVING_CANARY_CHECK,
    )
    if phase is None:
        series.keep_only(key, metrics, set())
        return
    keep: set[Series] = {(SERVING_CANARY_WEIGHT, labels)}
    series.set_gauge(key, SERVING_CANARY_WEIGHT, labels, weight)
    for candidate in ROLLOUT_PHASES:
        series.set_gauge(key, SERVING_ROLLOUT_PHASE, (*labels, candidate), 1 if candidate == phase else 0)
        keep.add((SERVING_ROLLOUT_PHASE, (*labels, candidate)))
    for name, value in checks.items():
        series.set_gauge(key, SERVING_CANARY_CHECK, (*labels, name), value)
        keep.add((SERVING_CANARY_CHECK, (*labels, name)))
    series.keep_only(key, metrics, keep)
