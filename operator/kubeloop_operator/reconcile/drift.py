"""DriftMonitor: apply the check CronJob, fold finished checks into status, retrain on drift."""

from __future__ import annotations

from collections.abc import Callable

import kopf

from kubeloop.api.deployment import ModelDeploymentSpec, PayloadLogging
from kubeloop.api.drift import DriftMonitorSpec, DriftMonitorStatus
from kubeloop_operator import metrics, reasons
from kubeloop_operator.conditions import now, set_condition
from kubeloop_operator.context import Context
from kubeloop_operator.kube import Obj
from kubeloop_operator.reconcile.loop import (
    Outcome,
    SpecError,
    invalid,
    key_of,
    parse_spec,
    parse_status,
    reconcile,
)
from kubeloop_operator.render.common import Owner
from kubeloop_operator.render.drift import cronjob_name, render_cronjob
from kubeloop_operator.render.retrain import render_retrain
from kubeloop_operator.status.drift import (
    apply_check,
    check_time,
    finished,
    is_new,
    job_summary,
    should_retrain,
    termination_messages,
)
from kubeloop_operator.status.pods import pod_problem

KIND = "DriftMonitor"


def reconcile_drift_monitor(ctx: Context, namespace: str, name: str, read: Obj | None = None) -> None:
    reconcile(ctx, KIND, namespace, name, step, read)


class NotReadyError(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def target_payload_log(ctx: Context, owner: Owner, spec: DriftMonitorSpec) -> PayloadLogging:
    """The payload log of the target ModelDeployment; NotReadyError until it exists and logs."""
    target_name = spec.target.model_deployment
    target = ctx.kube.get("ModelDeployment", owner.namespace, target_name)
    if target is None:
        raise NotReadyError(reasons.TARGET_NOT_FOUND, f"ModelDeployment {target_name} does not exist")
    try:
        payload = ModelDeploymentSpec.model_validate(dict(target["spec"])).payload_logging
    except ValueError as error:
        raise NotReadyError(reasons.TARGET_NOT_FOUND, f"ModelDeployment {target_name}: {error}") from error
    if payload is None:
        raise NotReadyError(
            reasons.PAYLOAD_LOGGING_OFF, f"ModelDeployment {target_name} has no payloadLogging"
        )
    return payload


def step(ctx: Context, obj: Obj) -> Outcome[DriftMonitorStatus]:
    owner, key = Owner.from_body(obj), key_of(obj)
    previous = parse_status(DriftMonitorStatus, obj)
    try:
        spec = parse_spec(DriftMonitorSpec, obj)
    except SpecError as bad:
        return invalid(previous, previous.conditions, reasons.READY, owner.generation, bad)
    jobs = ctx.kube.list_labeled("Job", owner.namespace, {f"kubeloop.io/{KIND.lower()}": owner.name})
    status, effects = fold_checks(ctx, owner, spec, previous, jobs)
    error: Exception | None = None
    try:
        payload = target_payload_log(ctx, owner, spec)
    except NotReadyError as problem:
        ready, reason, message = False, problem.reason, problem.message
        error = kopf.TemporaryError(problem.message, delay=15)
    else:
        cronjob = render_cronjob(owner, spec, payload, ctx.settings)
        if not ctx.applied_recently(key, [cronjob], {}):
            ctx.kube.apply(cronjob)
            ctx.remember_applied(key, [cronjob])
        status.observed_generation = owner.generation
        ready, reason = True, reasons.SCHEDULED
        message = f"checks run on schedule {spec.schedule!r} as CronJob {cronjob_name(owner)}"
        stuck = stuck_check(ctx, owner, jobs)
        if stuck is not None:  # no other check starts while it waits (concurrencyPolicy: Forbid)
            ready, reason, message = False, stuck[0], f"{message}; a check cannot run: {stuck[1]}"
    status.conditions = set_condition(
        status.conditions, reasons.READY, ready, reason, message, owner.generation
    )
    return Outcome(status, effects, error)


def stuck_check(ctx: Context, owner: Owner, jobs: list[Obj]) -> tuple[str, str] | None:
    """Why the pod of a check still running cannot run (`status.pods.pod_problem`), if it cannot."""
    running = [job["metadata"]["name"] for job in jobs if finished(job) is None]
    pods = [p for name in running for p in ctx.kube.list_labeled("Pod", owner.namespace, {"job-name": name})]
    return pod_problem(pods)


def fold_checks(
    ctx: Context, owner: Owner, spec: DriftMonitorSpec, previous: DriftMonitorStatus, jobs: list[Obj]
) -> tuple[DriftMonitorStatus, list[Callable[[], None]]]:
    """Apply each finished check not applied yet, oldest first; maybe trigger a retrain."""
    status, effects = previous.model_copy(), []
    for job in sorted((j for j in jobs if is_new(previous, j)), key=check_time):
        pods = ctx.kube.list_labeled("Pod", owner.namespace, {"job-name": job["metadata"]["name"]})
        summary = job_summary(pods)
        failure = next(iter(termination_messages(pods)), None) if summary is None else None
        before = status
        status = apply_check(status, job, summary, owner.generation, failure)
        if status is not before:
            succeeded = summary is not None and finished(job) == "Complete"
            effects.append(checked(ctx, owner, status, succeeded))
    if (
        status.last_check_job != previous.last_check_job
        and status.checks_succeeded > previous.checks_succeeded
    ):
        status, retrain = maybe_retrain(ctx, owner, spec, status)
        effects += retrain
    return status, effects


def maybe_retrain(
    ctx: Context, owner: Owner, spec: DriftMonitorSpec, status: DriftMonitorStatus
) -> tuple[DriftMonitorStatus, list[Callable[[], None]]]:
    """Create the TrainingJob from the template when drift calls for it and the cooldown allows."""
    action, at = spec.action, now()
    template = action.training_job_template
    if action.type != "Retrain" or template is None or status.last_check_job is None:
        return status, []
    if not should_retrain(status, at, action.cooldown_seconds):
        return status, []
    manifest = render_retrain(owner, template, status.last_check_job)
    name = manifest["metadata"]["name"]
    created = ctx.kube.create(manifest) is not None  # None: this check's retrain exists already
    status = status.model_copy(update={"last_triggered_training_job": name, "last_triggered_time": at})
    key = (KIND, owner.namespace, owner.name)

    def announce() -> None:
        if created:
            ctx.post(owner_body(owner), "Normal", reasons.RETRAIN_TRIGGERED, f"created TrainingJob {name}")
            ctx.series.inc_counter(key, metrics.DRIFT_RETRAINS, key[1:])

    return status, [announce]


def checked(ctx: Context, owner: Owner, status: DriftMonitorStatus, succeeded: bool) -> Callable[[], None]:
    key = (KIND, owner.namespace, owner.name)

    def record() -> None:
        ctx.series.inc_counter(key, metrics.DRIFT_CHECKS, (*key[1:], "succeeded" if succeeded else "failed"))
        metrics.record_drift(ctx.series, key, status.features, status.drift_share, bool(status.dataset_drift))
        metrics.record_performance(ctx.series, key, status.performance)
        if succeeded and status.dataset_drift:
            ctx.post(
                owner_body(owner), "Warning", reasons.DRIFT_DETECTED, f"drift share {status.drift_share:.2f}"
            )

    return record


def owner_body(owner: Owner) -> Obj:
    """Enough of the object for an Event's involvedObject."""
    meta = {"name": owner.name, "namespace": owner.namespace, "uid": owner.uid}
    return {"apiVersion": owner.api_version, "kind": owner.kind, "metadata": meta}
