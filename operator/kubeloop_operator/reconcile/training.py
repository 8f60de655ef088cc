"""TrainingJob: apply the Job (and the rendezvous Service), derive the phase from the Job and pods."""

from __future__ import annotations

from collections.abc import Callable

import kopf
from kubernetes.client.exceptions import ApiException

from kubeloop.api.data_sources import TRIGGERED_BY_ANNOTATION
from kubeloop.api.training import TrainingJobSpec, TrainingJobStatus
from kubeloop_operator import metrics, reasons
from kubeloop_operator.conditions import find
from kubeloop_operator.context import Context
from kubeloop_operator.kube import Obj
from kubeloop_operator.reconcile import gang as gangs
from kubeloop_operator.reconcile.loop import (
    Outcome,
    SpecError,
    invalid,
    key_of,
    parse_spec,
    parse_status,
    reconcile,
)
from kubeloop_operator.reconcile.progress import observe_progress
from kubeloop_operator.render.common import Owner
from kubeloop_operator.render.training import job_name, render_training
from kubeloop_operator.status.gang import gang_status
from kubeloop_operator.status.training import derive_training_status

KIND = "TrainingJob"
FINAL = ("Succeeded", "Failed")


def reconcile_training_job(ctx: Context, namespace: str, name: str, read: Obj | None = None) -> None:
    reconcile(ctx, KIND, namespace, name, step, read)


def step(ctx: Context, obj: Obj) -> Outcome[TrainingJobStatus]:
    owner, key = Owner.from_body(obj), key_of(obj)
    previous = parse_status(TrainingJobStatus, obj)
    try:
        spec = parse_spec(TrainingJobSpec, obj)
    except SpecError as error:
        return invalid(previous, previous.conditions, reasons.SUCCEEDED, owner.generation, error)
    gang = gangs.observe(ctx, owner, previous, spec) if spec.workers > 1 else None
    if gang is not None and gang.decision.action in ("restart", "replace"):
        return gangs.take_down(ctx, obj, previous, gang, spec)
    children = render_training(owner, spec, ctx.settings, gang.attempt if gang else 0)
    name = job_name(owner)
    # a finished run stays finished, even once its Job is gone (ttlSecondsAfterFinished)
    done = previous.phase in FINAL and previous.observed_generation == owner.generation
    if done or ctx.applied_recently(key, children, {}):
        job = ctx.kube.get("Job", owner.namespace, name)
        if job is None and done:
            return Outcome(previous)
    else:
        try:
            job = apply_children(ctx, owner, children, spec.workers)
        except ApiException as error:
            if error.status != 422:
                raise
            # Jobs are immutable once created: a changed template means a new run
            ctx.kube.delete("Job", owner.namespace, name)
            replacing = kopf.TemporaryError("waiting for the previous Job to be deleted", delay=3)
            return Outcome(previous, error=replacing)
        ctx.remember_applied(key, children)
    if job is None:  # deleted behind our back: applied again next time
        ctx.remember_applied(key, None)
    pods = ctx.kube.list_labeled("Pod", owner.namespace, {"job-name": name}) if job else []
    ui = ctx.settings.mlflow_ui_url or spec.mlflow.tracking_uri or ctx.settings.mlflow_tracking_uri
    status = derive_training_status(
        previous,
        job,
        pods,
        owner.generation,
        spec.run_policy.suspend,
        ui,
        challenged=spec.challenge is not None,
        fairness_gated=spec.fairness is not None,
        triggered_by=(obj["metadata"].get("annotations") or {}).get(TRIGGERED_BY_ANNOTATION),
    )
    if gang is not None:
        status = gang_status(status, gang.decision, owner.generation, spec.run_policy.restart_limit)
    status = observe_progress(ctx, owner, spec, previous, status)
    gpus = spec.resources.gpus * spec.workers
    return Outcome(status, [announce(ctx, obj, previous, status, gpus)])


def apply_children(ctx: Context, owner: Owner, children: list[Obj], workers: int) -> Obj:
    """Apply the Job and the rendezvous Service (only with workers > 1); returns the Job."""
    job: Obj = {}
    for child in children:
        applied = ctx.kube.apply(child)
        job = applied if child["kind"] == "Job" else job
    services = ctx.kube.list_labeled("Service", owner.namespace, owner.labels())
    ctx.kube.prune("Service", services, {job_name(owner)} if workers > 1 else set())
    return job


def announce(
    ctx: Context, obj: Obj, previous: TrainingJobStatus, status: TrainingJobStatus, gpus: int
) -> Callable[[], None]:
    """Events and metrics for phase transitions."""
    key = key_of(obj)

    def post() -> None:
        phase = status.phase or "Pending"
        metrics.record_training_phase(ctx.series, key, phase)
        ctx.series.set_gauge(key, metrics.TRAINING_GPUS, key[1:], gpus)
        metrics.record_training_progress(ctx.series, key, status.progress)
        if phase == previous.phase:
            return
        condition = next(c for c in status.conditions if c.type == reasons.SUCCEEDED)
        if phase == "Failed":
            ctx.post(obj, "Warning", condition.reason, condition.message)
            metrics.TRAINING_FAILURES.labels(key[1], condition.reason).inc()
        else:
            ctx.post(obj, "Normal", phase, condition.message)
        for kind in (reasons.FAIRNESS_GATE, reasons.CHALLENGER_GATE):
            gate = find(status.conditions, kind)
            if phase == "Succeeded" and gate is not None and gate.status == "False":
                ctx.post(obj, "Warning", gate.reason, gate.message)  # trained, but nothing moves
        if phase in FINAL and previous.phase not in FINAL and status.start_time and status.completion_time:
            seconds = (status.completion_time - status.start_time).total_seconds()
            metrics.TRAINING_DURATION.labels(key[1], phase).observe(seconds)

    return post
