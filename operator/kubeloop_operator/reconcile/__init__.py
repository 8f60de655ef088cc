"""One level-triggered reconcile per kind: read once, parse once, render, apply, prune, derive the
status from what was observed, write it once with optimistic concurrency."""

from kubeloop_operator.reconcile.drift import reconcile_drift_monitor
from kubeloop_operator.reconcile.serving import reconcile_model_deployment
from kubeloop_operator.reconcile.training import reconcile_training_job

__all__ = ["reconcile_drift_monitor", "reconcile_model_deployment", "reconcile_training_job"]
