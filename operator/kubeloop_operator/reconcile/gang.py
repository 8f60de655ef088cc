"""TrainingJob with workers > 1: observe the gang, and take down a failed or stale one.

The decision is status/gang.py's (pure); this module only reads the Job and its pods and
carries out a restart or a replacement: the status is written first, then the Job is deleted
with its pods (foreground), and the reconcile comes back until it is gone and a fresh gang
can be created.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import kopf

from kubeloop.api.training import TrainingJobSpec, TrainingJobStatus
from kubeloop_operator import reasons
from kubeloop_operator.context import Context
from kubeloop_operator.kube import Obj
from kubeloop_operator.reconcile.loop import Outcome, key_of
from kubeloop_operator.render.common import Owner
from kubeloop_operator.render.training import job_name
from kubeloop_operator.status.gang import GangDecision, decide, held_status, restart_message, restarts_of

RECHECK_SECONDS = 3  # a deleted Job's pods take their termination grace to go


@dataclass(frozen=True)
class Gang:
    decision: GangDecision
    attempt: int  # the attempt a Job applied now must run


def observe(ctx: Context, owner: Owner, previous: TrainingJobStatus, spec: TrainingJobSpec) -> Gang:
    restarts = restarts_of(previous, owner.generation)
    job = ctx.kube.get("Job", owner.namespace, job_name(owner))
    pods = ctx.kube.list_labeled("Pod", owner.namespace, {"job-name": job_name(owner)}) if job else []
    decision = decide(job, pods, restarts, spec.run_policy.restart_limit, owner.generation)
    return Gang(decision, restarts)


def take_down(
    ctx: Context, obj: Obj, previous: TrainingJobStatus, gang: Gang, spec: TrainingJobSpec
) -> Outcome[TrainingJobStatus]:
    """Restart or replace: the status now; the Job and its pods deleted once it is written."""
    owner, decision, limit = Owner.from_body(obj), gang.decision, spec.run_policy.restart_limit
    status = held_status(previous, decision, owner.generation, limit, spec.workers)
    ctx.remember_applied(key_of(obj), None)  # the next Job is a new one: apply it whatever was applied

    def delete_job() -> None:
        ctx.kube.delete("Job", owner.namespace, job_name(owner))

    effects: list[Callable[[], None]] = [delete_job]
    if decision.action == "restart":
        message = restart_message(decision, limit, spec.workers)
        effects.append(lambda: ctx.post(obj, "Warning", reasons.GANG_RESTART, message))
    waiting = kopf.TemporaryError("waiting for the earlier gang's Job and pods to go", delay=RECHECK_SECONDS)
    return Outcome(status, effects, error=waiting)
