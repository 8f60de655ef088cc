"""DriftMonitor handlers: render the check CronJob; turn finished checks into status, metrics, retrains."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import kopf

from kubeloop.api.common import API_VERSION, GROUP, VERSION
from kubeloop.api.deployment import ModelDeploymentSpec, PayloadLogging
from kubeloop.api.drift import DriftMonitorSpec
from kubeloop_operator import metrics
from kubeloop_operator.conditions import now, observed_generation, set_condition
from kubeloop_operator.render.common import Owner
from kubeloop_operator.render.drift import render_cronjob
from kubeloop_operator.render.names import child_name
from kubeloop_operator.runtime import RETRY, RUNTIME, parse_spec
from kubeloop_operator.status.drift import (
    apply_check,
    finished,
    job_summary,
    should_retrain,
    termination_messages,
)

PLURAL = "driftmonitors"


def target_payload_log(owner: Owner, spec: DriftMonitorSpec) -> PayloadLogging:
    """The payload log of the target ModelDeployment; a temporary error until it exists and logs."""
    target = RUNTIME.client().get("ModelDeployment", owner.namespace, spec.target.model_deployment)
    if target is None:
        raise NotReadyError(
            "TargetNotFound", f"ModelDeployment {spec.target.model_deployment} does not exist"
        )
    payload = ModelDeploymentSpec.model_validate(dict(target["spec"])).payload_logging
    if payload is None:
        raise NotReadyError(
            "PayloadLoggingOff", f"ModelDeployment {spec.target.model_deployment} has no payloadLogging"
        )
    return payload


class NotReadyError(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def set_ready(body: Any, ready: bool, reason: str, message: str) -> None:
    status = dict(body.get("status") or {})
    generation = body["metadata"].get("generation", 1)
    conditions = set_condition(
        list(status.get("conditions") or []), "Ready", ready, reason, message, generation
    )
    patch = {"conditions": conditions, "observedGeneration": generation}
    RUNTIME.client().patch_status(
        "DriftMonitor", body["metadata"]["namespace"], body["metadata"]["name"], patch
    )


@kopf.on.resume(GROUP, VERSION, PLURAL, **RETRY)  # type: ignore[arg-type]
@kopf.on.create(GROUP, VERSION, PLURAL, **RETRY)  # type: ignore[arg-type]
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec", **RETRY)  # type: ignore[arg-type]
def reconcile_drift_monitor(body: kopf.Body, **_: Any) -> None:
    with metrics.RECONCILE_SECONDS.labels("DriftMonitor").time():
        spec = parse_spec(DriftMonitorSpec, body["spec"])
        owner = Owner.from_body(body)
        try:
            payload = target_payload_log(owner, spec)
        except NotReadyError as problem:
            set_ready(body, False, problem.reason, problem.message)
            raise kopf.TemporaryError(problem.message, delay=15) from problem
        cronjob = render_cronjob(owner, spec, payload, RUNTIME.settings)
        RUNTIME.client().apply(cronjob)
        set_ready(
            body,
            True,
            "Scheduled",
            f"checks run on schedule {spec.schedule!r} as CronJob {cronjob['metadata']['name']}",
        )
    metrics.RECONCILES.labels("DriftMonitor", "ok").inc()


def retrain_name(monitor: str, check_job: str) -> str:
    """One name per check: creating it twice is a no-op, so a restart cannot double a retrain."""
    return child_name(monitor, "retrain-" + check_job.rsplit("-", 1)[-1])


def trigger_retrain(body: Any, spec: DriftMonitorSpec, status: dict[str, Any]) -> dict[str, Any]:
    """Create the TrainingJob from the template when drift calls for it and the cooldown allows."""
    action = spec.action
    if action.type != "Retrain" or action.training_job_template is None:
        return status
    last = status.get("lastTriggeredTime")
    last_epoch = datetime.fromisoformat(last).timestamp() if last else None
    if not should_retrain(status, time.time(), last_epoch, action.cooldown_seconds):
        return status
    owner = Owner.from_body(body)
    name = retrain_name(owner.name, status["lastCheckJob"])
    template = action.training_job_template
    manifest = {
        "apiVersion": API_VERSION,
        "kind": "TrainingJob",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": {**template.labels, **owner.labels()},
            "annotations": {
                "kubeloop.io/triggered-by": f"DriftMonitor/{owner.name}/{status['lastCheckJob']}"
            },
            "ownerReferences": [owner.reference()],
        },
        "spec": template.spec.wire(),
    }
    if RUNTIME.client().create(manifest) is not None:
        kopf.info(body, reason="RetrainTriggered", message=f"created TrainingJob {name}")
        metrics.DRIFT_RETRAINS.labels(owner.namespace, owner.name).inc()
    return {**status, "lastTriggeredTrainingJob": name, "lastTriggeredTime": now()}


@kopf.on.event("batch", "v1", "jobs", labels={"kubeloop.io/driftmonitor": kopf.PRESENT})  # type: ignore[arg-type]
def drift_check_changed(body: kopf.Body, namespace: str, labels: kopf.Labels, **_: Any) -> None:
    """A finished check Job becomes status, metrics and (maybe) a retrain, exactly once per Job."""
    if finished(dict(body)) is None:
        return
    kube = RUNTIME.client()
    check = dict(body)
    name = labels["kubeloop.io/driftmonitor"]
    pods = kube.list_labeled("Pod", namespace, {"job-name": check["metadata"]["name"]})
    summary = job_summary(pods)
    failure = next(iter(termination_messages(pods)), None) if summary is None else None
    seen: dict[str, Any] = {}

    def derive(monitor: dict[str, Any]) -> dict[str, Any] | None:
        current = dict(monitor.get("status") or {})
        seen["monitor"] = monitor
        generation = observed_generation(current, monitor["metadata"].get("generation", 1), reconciled=False)
        status = apply_check(current, check, summary, generation, failure)
        if status == current:
            return None
        spec = DriftMonitorSpec.model_validate(dict(monitor["spec"]))
        return trigger_retrain(monitor, spec, status)

    changed = kube.update_status("DriftMonitor", namespace, name, derive)
    if changed is None:
        return
    status = changed[1]
    succeeded = summary is not None and finished(check) == "Complete"
    metrics.DRIFT_CHECKS.labels(namespace, name, "succeeded" if succeeded else "failed").inc()
    metrics.record_drift(namespace, name, status)
    if succeeded and status.get("datasetDrift"):
        kopf.warn(seen["monitor"], reason="DriftDetected", message=f"drift share {status['driftShare']:.2f}")
