"""The operator's Prometheus metrics (prefix kubeloop_, base units, low-cardinality labels)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "kubeloop_operator_reconciles_total", "Reconciliations by kind and result.", ["kind", "result"]
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

PHASES = ("Pending", "Suspended", "Running", "Succeeded", "Failed")


def record_training_phase(namespace: str, name: str, phase: str) -> None:
    for candidate in PHASES:
        TRAINING_PHASE.labels(namespace, name, candidate).set(1 if candidate == phase else 0)


def record_drift(namespace: str, monitor: str, status: dict[str, object]) -> None:
    features = status.get("features") or []
    for feature in features:  # type: ignore[attr-defined]
        DRIFT_SCORE.labels(namespace, monitor, feature["name"], feature["test"]).set(feature["score"])
        DRIFT_FEATURE_DRIFTED.labels(namespace, monitor, feature["name"]).set(1 if feature["drifted"] else 0)
    if status.get("driftShare") is not None:
        DRIFT_SHARE.labels(namespace, monitor).set(float(status["driftShare"]))  # type: ignore[arg-type]
        DRIFT_DETECTED.labels(namespace, monitor).set(1 if status.get("datasetDrift") else 0)
