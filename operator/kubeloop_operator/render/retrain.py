"""DriftMonitor -> the TrainingJob a drift episode triggers (action Retrain)."""

from __future__ import annotations

from kubeloop.api.common import API_VERSION
from kubeloop.api.data_sources import DRIFT_CHECK_LABEL, TRIGGERED_BY_ANNOTATION
from kubeloop.api.drift import TrainingJobTemplate
from kubeloop_operator.render.common import Manifest, Owner
from kubeloop_operator.render.names import child_name


def retrain_name(monitor: str, check_job: str) -> str:
    """One name per check: creating it twice is a no-op, so a restart cannot double a retrain."""
    return child_name(monitor, "retrain-" + check_job.rsplit("-", 1)[-1])


def render_retrain(owner: Owner, template: TrainingJobTemplate, check_job: str) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingJob",
        "metadata": {
            "name": retrain_name(owner.name, check_job),
            "namespace": owner.namespace,
            "labels": {**template.labels, **owner.labels(), DRIFT_CHECK_LABEL: check_job},
            "annotations": {TRIGGERED_BY_ANNOTATION: f"DriftMonitor/{owner.name}/{check_job}"},
            "ownerReferences": [owner.reference()],
        },
        "spec": template.spec.wire(),
    }
