"""TrainingJob handlers: reconcile the Job; derive status whenever the Job changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from kubeloop.api.common import GROUP, VERSION
from kubeloop.api.training import TrainingJobSpec
from kubeloop_operator import metrics
from kubeloop_operator.conditions import observed_generation
from kubeloop_operator.render.common import Owner
from kubeloop_operator.render.training import job_name, render_training
from kubeloop_operator.runtime import RETRY, RUNTIME, parse_spec
from kubeloop_operator.status.training import derive_training_status

PLURAL = "trainingjobs"
FINAL = ("Succeeded", "Failed")


def apply_job(manifest: dict[str, Any], logger: Any) -> None:
    """Jobs are immutable once created: a changed template means a new run (delete, then create)."""
    kube = RUNTIME.client()
    try:
        kube.apply(manifest)
    except ApiException as error:
        if error.status != 422:
            raise
        meta = manifest["metadata"]
        logger.info(f"the spec of Job {meta['name']} changed: replacing the run")
        kube.delete("Job", meta["namespace"], meta["name"])
        raise kopf.TemporaryError("waiting for the previous Job to be deleted", delay=3) from error


def refresh_status(namespace: str, name: str, reconciled: bool = False) -> dict[str, Any] | None:
    """Derive status from the Job and its pods now; announce phase transitions. Returns the new status.
    `reconciled`: the Job of the current generation was just applied (see observed_generation)."""
    kube = RUNTIME.client()
    seen: dict[str, Any] = {}

    def derive(current: dict[str, Any]) -> dict[str, Any]:
        seen["body"] = current
        owner = Owner.from_body(current)
        spec = TrainingJobSpec.model_validate(dict(current["spec"]))
        job = kube.get("Job", owner.namespace, job_name(owner))
        pods = kube.list_labeled("Pod", owner.namespace, {"job-name": job_name(owner)}) if job else []
        ui = (
            RUNTIME.settings.mlflow_ui_url or spec.mlflow.tracking_uri or RUNTIME.settings.mlflow_tracking_uri
        )
        status = dict(current.get("status") or {})
        generation = observed_generation(status, owner.generation, reconciled)
        return derive_training_status(status, job, pods, generation, spec.run_policy.suspend, ui)

    changed = kube.update_status("TrainingJob", namespace, name, derive)
    if changed is None:
        return None
    before, after = changed
    announce(seen["body"], before.get("phase"), after)
    if after["phase"] in FINAL and before.get("phase") not in FINAL:
        record_duration(namespace, after)
    return after


def announce(body: Any, before: str | None, status: dict[str, Any]) -> None:
    """Kubernetes Events and metrics for phase transitions."""
    phase = status["phase"]
    meta = body["metadata"]
    metrics.record_training_phase(meta["namespace"], meta["name"], phase)
    if phase == before:
        return
    condition = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    if phase == "Failed":
        kopf.warn(body, reason=condition["reason"], message=condition["message"])
        metrics.TRAINING_FAILURES.labels(meta["namespace"], condition["reason"]).inc()
    else:
        kopf.info(body, reason=phase, message=condition["message"])


@kopf.on.resume(GROUP, VERSION, PLURAL, **RETRY)  # type: ignore[arg-type]
@kopf.on.create(GROUP, VERSION, PLURAL, **RETRY)  # type: ignore[arg-type]
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec", **RETRY)  # type: ignore[arg-type]
def reconcile_training_job(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    with metrics.RECONCILE_SECONDS.labels("TrainingJob").time():
        spec = parse_spec(TrainingJobSpec, body["spec"])
        owner = Owner.from_body(body)
        kube = RUNTIME.client()
        for child in render_training(owner, spec, RUNTIME.settings):
            if child["kind"] == "Job":
                apply_job(child, logger)
            else:
                kube.apply(child)
        keep = {job_name(owner)} if spec.workers > 1 else set()
        kube.prune("Service", owner.namespace, owner.labels(), keep)
        metrics.TRAINING_GPUS.labels(owner.namespace, owner.name).set(spec.resources.gpus * spec.workers)
        refresh_status(owner.namespace, owner.name, reconciled=True)
    metrics.RECONCILES.labels("TrainingJob", "ok").inc()


@kopf.on.event("batch", "v1", "jobs", labels={"kubeloop.io/trainingjob": kopf.PRESENT})  # type: ignore[arg-type]
def training_job_changed(namespace: str, labels: kopf.Labels, **_: Any) -> None:
    refresh_status(namespace, labels["kubeloop.io/trainingjob"])


def record_duration(namespace: str, status: dict[str, Any]) -> None:
    start, end = status.get("startTime"), status.get("completionTime")
    if start and end:
        seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
        metrics.TRAINING_DURATION.labels(namespace, status["phase"]).observe(seconds)
