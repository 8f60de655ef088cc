"""TrainingJob handlers: reconcile the Job; derive status whenever the Job changes."""

from __future__ import annotations

from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from kubeloop.api.common import GROUP, VERSION
from kubeloop.api.training import TrainingJobSpec
from kubeloop_operator import metrics
from kubeloop_operator.render.common import Owner
from kubeloop_operator.render.training import job_name, render_training
from kubeloop_operator.runtime import RETRY, RUNTIME, parse_spec
from kubeloop_operator.status.training import derive_training_status

PLURAL = "trainingjobs"


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


def refresh_status(body: Any, spec: TrainingJobSpec | None = None) -> dict[str, Any]:
    kube = RUNTIME.client()
    owner = Owner.from_body(body)
    spec = spec or TrainingJobSpec.model_validate(dict(body["spec"]))
    job = kube.get("Job", owner.namespace, job_name(owner))
    pods = kube.list("Pod", owner.namespace, {"job-name": job_name(owner)}) if job else []
    current = dict(body.get("status") or {})
    ui = RUNTIME.settings.mlflow_ui_url or spec.mlflow.tracking_uri or RUNTIME.settings.mlflow_tracking_uri
    status = derive_training_status(current, job, pods, owner.generation, spec.run_policy.suspend, ui)
    if status != {k: current.get(k) for k in status}:
        kube.patch_status("TrainingJob", owner.namespace, owner.name, status)
        announce(body, current.get("phase"), status)
    return status


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
        refresh_status(body, spec)
    metrics.RECONCILES.labels("TrainingJob", "ok").inc()


@kopf.on.event("batch", "v1", "jobs", labels={"kubeloop.io/trainingjob": kopf.PRESENT})  # type: ignore[arg-type]
def training_job_changed(body: kopf.Body, namespace: str, labels: kopf.Labels, **_: Any) -> None:
    parent = RUNTIME.client().get("TrainingJob", namespace, labels["kubeloop.io/trainingjob"])
    if parent is not None and parent["metadata"].get("deletionTimestamp") is None:
        before = (parent.get("status") or {}).get("phase")
        status = refresh_status(parent)
        if status["phase"] in ("Succeeded", "Failed") and before not in ("Succeeded", "Failed"):
            record_duration(namespace, status)


def record_duration(namespace: str, status: dict[str, Any]) -> None:
    from datetime import datetime

    start, end = status.get("startTime"), status.get("completionTime")
    if start and end:
        seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
        metrics.TRAINING_DURATION.labels(namespace, status["phase"]).observe(seconds)
