"""A ModelDeployment's canary rollout, one pass: the step machine (pure), the analysis it asks for
(Prometheus), the promotion (the registry alias), and what the servers are rendered with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import kopf

from kubeloop.api.deployment import ModelDeploymentSpec, ModelSource
from kubeloop.api.deployment_status import ModelDeploymentStatus, PromotedModel, ResolvedModel, RolloutStatus
from kubeloop_operator import metrics, reasons
from kubeloop_operator.context import Context
from kubeloop_operator.kube import Obj
from kubeloop_operator.prometheus import PrometheusError, measure
from kubeloop_operator.registry import RegistryError, movable_alias, set_alias
from kubeloop_operator.render.common import Owner
from kubeloop_operator.render.delivery import Delivery, Track, canary_name
from kubeloop_operator.render.serving import served_uri
from kubeloop_operator.rollout import machine
from kubeloop_operator.rollout.checks import evaluate, verdict
from kubeloop_operator.status.serving import rolled_out

MODEL_URI_ANNOTATION = "kubeloop.io/model-uri"


@dataclass
class Plan:
    """The rollout's next state and what the children are rendered with; `problem` (reason, message)
    holds the rollout where it is, `error` retries the reconcile later."""

    rollout: RolloutStatus | None
    promoted: PromotedModel | None
    delivery: Delivery
    problem: tuple[str, str] | None = None
    error: Exception | None = None
    effects: list[Callable[[], None]] = field(default_factory=list)


def template_uri(deployment: Obj) -> str | None:
    annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
    return annotations.get(MODEL_URI_ANNOTATION)


def spec_observed(deployment: Obj) -> bool:
    """The Deployment controller has seen the latest spec: its status counts are about it."""
    observed = (deployment.get("status") or {}).get("observedGeneration", 0)
    return bool(observed >= deployment["metadata"].get("generation", 0))


def serves(deployment: Obj | None, uri: str) -> bool:
    """Every pod of the Deployment runs a template that serves `uri`, and one of them is ready."""
    if deployment is None:
        return False
    status = deployment.get("status") or {}
    return bool(
        template_uri(deployment) == uri
        and spec_observed(deployment)
        and status.get("replicas", 0) == status.get("updatedReplicas", 0)
        and status.get("readyReplicas", 0) >= 1
    )


def canary_readiness(deployment: Obj | None, uri: str) -> bool | None:
    """serves(), or None while the Deployment controller has not observed the latest spec of a template
    that serves `uri`: the operator has just scaled it (the HPA moved stable), and its pods are as they
    were. Read as not ready, every such scale put the weight to 0 and restarted the step."""
    if deployment is not None and template_uri(deployment) == uri and not spec_observed(deployment):
        return None
    return serves(deployment, uri)


def replicas_of(deployment: Obj | None, default: int) -> int:
    if deployment is None:
        return default
    value = deployment.get("spec", {}).get("replicas")
    return int(value) if value is not None else default


def promoted_track(promoted: PromotedModel) -> Track:
    resolved = ResolvedModel(uri=promoted.uri, version=promoted.version) if promoted.version else None
    return Track(ModelSource(uri=promoted.uri, sha256=promoted.sha256), resolved)


def plan_delivery(
    ctx: Context,
    owner: Owner,
    spec: ModelDeploymentSpec,
    previous: ModelDeploymentStatus,
    canary_resolved: ResolvedModel | None,
    deployments: dict[str, Obj],
    now: datetime,
) -> Plan:
    promoted = previous.promoted_model
    if promoted is not None and promoted.replaces != spec.model.uri:
        promoted = None  # the user named a new model: it is stable now
    stable_track = promoted_track(promoted) if promoted else None
    if spec.canary is None:
        return Plan(None, promoted, Delivery(stable=stable_track))
    canary, stable = spec.canary, deployments.get(owner.name)
    canary_deployment = deployments.get(canary_name(owner))
    canary_uri = served_uri(canary.model, canary_resolved)
    observed = machine.Observed(
        now=now,
        canary_uri=canary_uri,
        canary_version=canary_resolved.version if canary_resolved else None,
        canary_ready=canary_readiness(canary_deployment, canary_uri),
        stable_promoted=serves(stable, canary_uri) and stable is not None and rolled_out(stable),
        prometheus=ctx.prometheus is not None,
    )
    before = previous.rollout
    advanced = machine.advance(canary, before, observed)
    plan = Plan(advanced, promoted, Delivery(stable=stable_track))
    if canary.analysis is not None and machine.due(advanced, canary.analysis, now):
        analyse(ctx, owner, spec, plan, now)
    assert plan.rollout is not None
    if plan.rollout.phase == "Promoting":
        promote_in_registry(ctx, spec, canary_resolved, plan)
        plan.delivery = Delivery(stable=Track(canary.model, canary_resolved))
    elif plan.rollout.phase == "Promoted" and before is not None and before.phase == "Promoting":
        if not plan.rollout.alias_moved:  # stable serves the canary's model until spec.model is edited
            sha = canary.model.sha256
            plan.promoted = PromotedModel(
                uri=canary_uri, version=observed.canary_version, sha256=sha, replaces=spec.model.uri
            )
        plan.delivery = Delivery(stable=Track(canary.model, canary_resolved))
    rollout = plan.rollout
    assert rollout is not None
    sizing = machine.sizing_weight(canary, rollout)
    if sizing is None:  # weight 0 at the end: keep the canary until every stable server has seen it
        drained = machine.drained(rollout, now, ctx.settings.routes_propagation_seconds)
        replicas = 0 if drained else replicas_of(canary_deployment, 0)
    else:
        stable_now = replicas_of(stable, spec.replicas.min)
        replicas = machine.canary_replicas(stable_now, sizing, spec.replicas.max)
    plan.delivery = Delivery(weight=rollout.weight, canary_replicas=replicas, stable=plan.delivery.stable)
    return plan


def analyse(ctx: Context, owner: Owner, spec: ModelDeploymentSpec, plan: Plan, now: datetime) -> None:
    """Measure the window in Prometheus and judge it; an unreachable Prometheus holds the step."""
    assert spec.canary is not None and spec.canary.analysis is not None and plan.rollout is not None
    assert ctx.prometheus is not None
    analysis, rollout = spec.canary.analysis, plan.rollout
    seconds = machine.window_seconds(rollout, now)
    try:
        measured = measure(ctx.prometheus, owner.namespace, owner.name, seconds, now)
    except PrometheusError as error:
        plan.problem = (reasons.METRICS_UNAVAILABLE, str(error))
        return
    results = evaluate(analysis.checks, measured)
    outcome = verdict(analysis, measured, results)
    plan.rollout = machine.judge(rollout, analysis, results, outcome, measured.canary.requests, now)


def promote_in_registry(
    ctx: Context, spec: ModelDeploymentSpec, canary: ResolvedModel | None, plan: Plan
) -> None:
    """Move the alias stable follows to the canary's version (once; idempotent if repeated)."""
    rollout = plan.rollout
    assert rollout is not None
    if rollout.alias_moved is not None:
        return
    target = movable_alias(spec.model.uri, canary) if canary is not None else None
    if target is None:
        plan.rollout = rollout.model_copy(update={"alias_moved": False})
        return
    name, alias, version = target
    tracking = ctx.settings.mlflow_tracking_uri
    try:
        set_alias(tracking, name, alias, version)
    except RegistryError as error:
        plan.problem = (reasons.PROMOTION_BLOCKED, str(error))
        plan.error = kopf.TemporaryError(str(error), delay=15)
        return
    assert canary is not None
    ctx.remember_model(spec.model.uri, tracking, canary)  # stable's alias means the new version now
    message = f"models:/{name}@{alias} moved to version {version}; stable rolling to it"
    plan.rollout = rollout.model_copy(update={"alias_moved": True, "message": message})


def announce_rollout(
    ctx: Context, obj: Obj, before: RolloutStatus | None, after: RolloutStatus | None
) -> Callable[[], None]:
    """Events for a rollout's transitions: steps, inconclusive holds, failures, the end."""

    def post() -> None:
        if after is None:
            return
        same = before is not None and before.canary_uri == after.canary_uri
        old_phase = before.phase if same and before else None
        if after.phase != old_phase:
            event = PHASE_EVENTS.get(after.phase)
            if event is not None:
                ctx.post(obj, event[0], event[1], after.message)
        elif after.failures > (before.failures if before else 0):
            ctx.post(obj, "Warning", reasons.ANALYSIS_FAILED, after.message)
        if (
            after.phase == "Progressing"
            and after.weight > 0
            and (not same or before is None or (before.step, before.weight) != (after.step, after.weight))
        ):
            ctx.post(obj, "Normal", reasons.STEP_STARTED, after.message)

    return post


PHASE_EVENTS: dict[str, tuple[str, str]] = {
    "Idle": ("Warning", reasons.PROMETHEUS_NOT_CONFIGURED),
    "Paused": ("Normal", reasons.ROLLOUT_PAUSED),
    "Inconclusive": ("Normal", reasons.ANALYSIS_INCONCLUSIVE),
    "Promoting": ("Normal", reasons.PROMOTING),
    "Promoted": ("Normal", reasons.PROMOTED),
    "RolledBack": ("Warning", reasons.ROLLED_BACK),
    "Aborted": ("Warning", reasons.ABORTED),
}


def record_rollout(ctx: Context, obj: Obj, rollout: RolloutStatus | None) -> Callable[[], None]:
    key = (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])

    def update() -> None:
        if rollout is None:
            metrics.record_rollout(ctx.series, key, None, 0, {})
            return
        checks = {c.name: c.value for c in rollout.checks if c.value is not None}
        metrics.record_rollout(ctx.series, key, rollout.phase, rollout.weight, checks)

    return update
