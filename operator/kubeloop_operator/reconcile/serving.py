"""ModelDeployment: resolve the model, apply the servers and their Service/HPA/PDB, derive Ready."""

from __future__ import annotations

from collections.abc import Callable

import kopf

from kubeloop.api.deployment import ModelDeploymentSpec
from kubeloop.api.deployment_status import ModelDeploymentStatus, ResolvedModel, RolloutStatus, TrackStatus
from kubeloop_operator import metrics, reasons
from kubeloop_operator.conditions import status_of
from kubeloop_operator.context import Context, digest
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
from kubeloop_operator.reconcile.rollout import Plan, announce_rollout, plan_delivery, record_rollout
from kubeloop_operator.registry import RegistryError, resolve
from kubeloop_operator.render.common import Owner
from kubeloop_operator.render.delivery import Delivery, SideTracks, side_tracks
from kubeloop_operator.render.serving import expected_replicas, render_serving, service_url
from kubeloop_operator.status.autoscaling import autoscaling_condition
from kubeloop_operator.status.pods import pod_problem
from kubeloop_operator.status.rollout import rollout_condition
from kubeloop_operator.status.serving import (
    derive_serving_status,
    ready_side_tracks,
    servers_ready,
    side_status,
)

KIND = "ModelDeployment"
HPA = "HorizontalPodAutoscaler"


def reconcile_model_deployment(ctx: Context, namespace: str, name: str, read: Obj | None = None) -> None:
    reconcile(ctx, KIND, namespace, name, step, read)


def resolve_model(ctx: Context, uri: str, poll_seconds: float) -> ResolvedModel | None:
    """The version a registry URI means, asked again once `poll_seconds` have passed; if the
    registry cannot be asked, the last answer stands (the servers keep serving it)."""
    tracking = ctx.settings.mlflow_tracking_uri
    cached = ctx.cached_model(uri, tracking, poll_seconds)
    if cached is not None:
        return cached
    try:
        resolved = resolve(uri, tracking)
    except RegistryError:
        stale = ctx.cached_model(uri, tracking, -1)
        if stale is None:
            raise
        return stale
    if resolved is not None:
        ctx.remember_model(uri, tracking, resolved)
    return resolved


def step(ctx: Context, obj: Obj) -> Outcome[ModelDeploymentStatus]:
    owner, key = Owner.from_body(obj), key_of(obj)
    previous = parse_status(ModelDeploymentStatus, obj)
    try:
        spec = parse_spec(ModelDeploymentSpec, obj)
    except SpecError as error:
        return invalid(previous, previous.conditions, reasons.READY, owner.generation, error)
    url = service_url(owner, ctx.settings.cluster_domain)
    listed = ctx.kube.list_labeled("Deployment", owner.namespace, owner.labels())
    observed = {d["metadata"]["name"]: d for d in listed}
    # A canary whose model cannot be resolved yet (`@challenger` before any challenger exists, or the
    # registry down before its first answer) is left out: stable serves; the alias timer asks again.
    waiting_canary: str | None = None
    canary: ResolvedModel | None = None
    if spec.canary is not None:
        try:
            canary = resolve_model(ctx, spec.canary.model.uri, spec.registry_poll_seconds)
        except RegistryError as error:
            if previous.canary_model is not None:  # it ran before: hold everything, as for stable
                return held(ctx, obj, previous, listed, owner, spec, url, error)
            waiting_canary = f"waiting for the canary model: {error}"
            spec = spec.model_copy(update={"canary": None})
    try:
        model = resolve_model(ctx, spec.model.uri, spec.registry_poll_seconds)
        side_models = {
            track: resolve_model(ctx, source.uri, spec.registry_poll_seconds)
            for track, source in side_tracks(spec)
        }
    except RegistryError as error:
        return held(ctx, obj, previous, listed, owner, spec, url, error)

    plan = plan_delivery(ctx, owner, spec, previous, canary, observed, ctx.wall_clock())
    side = SideTracks(side_models, ready_side_tracks(owner, spec, observed))
    children = render_serving(
        owner, spec, ctx.settings, model, canary, ctx.service_monitors, plan.delivery, side
    )
    wanted = {c["metadata"]["name"] for c in children if c["kind"] == "Deployment"}
    if not ctx.applied_recently(key, children, generations(observed, wanted)):
        for child in children:
            applied = ctx.kube.apply(child)
            if child["kind"] == "Deployment":
                observed[child["metadata"]["name"]] = applied
        ctx.kube.prune("Deployment", listed, wanted)
        services = {c["metadata"]["name"] for c in children if c["kind"] == "Service"}
        ctx.kube.prune("Service", ctx.kube.list_labeled("Service", owner.namespace, owner.labels()), services)
        ctx.remember_applied(key, children, generations(observed, wanted))
    deployments = [d for name, d in observed.items() if name in wanted]
    stable = plan.delivery.stable
    resolved = (
        (stable.resolved or ResolvedModel(uri=stable.source.uri))
        if stable
        else (model or ResolvedModel(uri=spec.model.uri)),
        canary or (ResolvedModel(uri=spec.canary.model.uri) if spec.canary else None),
    )
    tracks = side_status(owner, spec, observed, side, resolved[0])
    stuck = None
    if deployments and not servers_ready(deployments, expected_replicas(spec, plan.delivery)):
        stuck = pod_problem(ctx.kube.list_labeled("Pod", owner.namespace, owner.labels()))
    status = derive(previous, deployments, owner, spec, url, *resolved, plan, None, tracks, stuck)
    conditions = autoscaling_condition(
        status.conditions, autoscaler(ctx, owner), spec.autoscaling, owner.generation
    )
    status = status.model_copy(update={"conditions": conditions})
    if waiting_canary is not None:
        status = status.model_copy(update={"rollout": RolloutStatus(phase="Idle", message=waiting_canary)})
    effects = [
        announce(ctx, obj, previous, status),
        announce_rollout(ctx, obj, previous.rollout, status.rollout),
        record(ctx, obj, spec, status),
        record_rollout(ctx, obj, status.rollout),
    ]
    return Outcome(status, effects, plan.error)


def held(
    ctx: Context,
    obj: Obj,
    previous: ModelDeploymentStatus,
    listed: list[Obj],
    owner: Owner,
    spec: ModelDeploymentSpec,
    url: str,
    error: RegistryError,
) -> Outcome[ModelDeploymentStatus]:
    """The registry cannot say what to serve: children stay as they are, the status says why, retry."""
    problem = (reasons.MODEL_NOT_RESOLVED, str(error))
    plan = Plan(previous.rollout, previous.promoted_model, Delivery())
    kept = (previous.shadow, previous.ab_test)
    status = derive(
        previous, listed, owner, spec, url, previous.model, previous.canary_model, plan, problem, kept
    )
    return Outcome(status, [announce(ctx, obj, previous, status)], kopf.TemporaryError(str(error), delay=15))


def autoscaler(ctx: Context, owner: Owner) -> Obj | None:
    """The stable track's HPA as the API server has it: its status is the HPA controller's word."""
    listed = ctx.kube.list_labeled(HPA, owner.namespace, owner.labels())
    return next((h for h in listed if h["metadata"]["name"] == owner.name), None)


def generations(observed: dict[str, Obj], wanted: set[str]) -> dict[str, str]:
    """A digest of each wanted Deployment's pod template: a deletion or an edit of it changes this,
    the autoscaler's changes of spec.replicas do not."""
    return {n: digest([d["spec"]["template"]]) for n, d in observed.items() if n in wanted}


def derive(
    previous: ModelDeploymentStatus,
    deployments: list[Obj],
    owner: Owner,
    spec: ModelDeploymentSpec,
    url: str,
    model: ResolvedModel | None,
    canary: ResolvedModel | None,
    plan: Plan,
    problem: tuple[str, str] | None,
    tracks: tuple[TrackStatus | None, list[TrackStatus] | None] = (None, None),
    stuck: tuple[str, str] | None = None,
) -> ModelDeploymentStatus:
    status = derive_serving_status(
        previous,
        deployments,
        owner.generation,
        expected_replicas(spec, plan.delivery),
        url,
        model,
        canary,
        problem,
        stuck,
    )
    fixed = spec.canary is not None and spec.canary.analysis is None
    conditions = rollout_condition(status.conditions, plan.rollout, fixed, plan.problem, owner.generation)
    return status.model_copy(
        update={
            "rollout": plan.rollout,
            "promoted_model": plan.promoted,
            "shadow": tracks[0],
            "ab_test": tracks[1],
            "conditions": conditions,
        }
    )


def announce(
    ctx: Context, obj: Obj, previous: ModelDeploymentStatus, status: ModelDeploymentStatus
) -> Callable[[], None]:
    """Events when Ready becomes True or stops being True (the warning), and for registry rollouts."""

    def post() -> None:
        before, after = (
            status_of(previous.conditions, reasons.READY),
            status_of(status.conditions, reasons.READY),
        )
        ready = next(c for c in status.conditions if c.type == reasons.READY)
        if after != before and "True" in (before, after):
            ctx.post(obj, "Warning" if before == "True" else "Normal", ready.reason, ready.message)
        old = (
            previous.model.version if previous.model else None,
            previous.canary_model.version if previous.canary_model else None,
        )
        new = (
            status.model.version if status.model else None,
            status.canary_model.version if status.canary_model else None,
        )
        if previous.model is not None and old != new:
            ctx.post(obj, "Normal", reasons.MODEL_VERSION_CHANGED, f"{old} -> {new}: rolling out")
            ctx.series.inc_counter(key_of(obj), metrics.SERVING_MODEL_VERSION_CHANGES, key_of(obj)[1:])

    return post


def record(
    ctx: Context, obj: Obj, spec: ModelDeploymentSpec, status: ModelDeploymentStatus
) -> Callable[[], None]:
    key = key_of(obj)
    labels = key[1:]

    def update() -> None:
        ctx.series.set_gauge(key, metrics.SERVING_READY_REPLICAS, labels, status.ready_replicas)
        ctx.series.set_gauge(key, metrics.SERVING_REPLICAS, labels, status.replicas)
        ctx.series.set_gauge(key, metrics.SERVING_MIN_REPLICAS, labels, spec.replicas.min)
        ctx.series.set_gauge(key, metrics.SERVING_MAX_REPLICAS, labels, spec.replicas.max)
        ctx.series.set_gauge(
            key, metrics.SERVING_TARGET_CPU, labels, spec.autoscaling.target_cpu_utilization / 100
        )

    return update
