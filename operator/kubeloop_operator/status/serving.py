"""ModelDeployment status, derived from its Deployments."""

from __future__ import annotations

from typing import Any

from kubeloop.api.deployment import ModelDeploymentSpec
from kubeloop.api.deployment_status import ModelDeploymentStatus, ResolvedModel, TrackStatus
from kubeloop_operator import reasons
from kubeloop_operator.conditions import set_condition
from kubeloop_operator.render.common import Owner
from kubeloop_operator.render.delivery import SHADOW, SideTracks, ab_weights, side_tracks, track_name


def rolled_out(deployment: dict[str, Any]) -> bool:
    """The controller has seen the newest template and every replica runs it."""
    meta, spec, status = deployment["metadata"], deployment.get("spec", {}), deployment.get("status", {})
    wanted = spec.get("replicas", 1)
    return bool(
        status.get("observedGeneration", 0) >= meta.get("generation", 0)
        and status.get("updatedReplicas", 0) >= wanted
        and status.get("availableReplicas", 0) >= wanted
    )


def servers_ready(deployments: list[dict[str, Any]], expected: int) -> bool:
    """Each track has rolled out, and at least ``expected`` replicas are ready."""
    ready = sum(ready_replicas(d) for d in deployments)
    return bool(deployments) and all(rolled_out(d) for d in deployments) and ready >= expected


def derive_serving_status(
    previous: ModelDeploymentStatus,
    deployments: list[dict[str, Any]],
    generation: int,
    expected: int,
    url: str,
    model: ResolvedModel | None,
    canary_model: ResolvedModel | None,
    problem: tuple[str, str] | None = None,
    stuck: tuple[str, str] | None = None,
) -> ModelDeploymentStatus:
    """Ready when each track has rolled out and at least `expected` replicas are ready. Without a
    `problem` the children of `generation` were applied, so observedGeneration becomes it. ``stuck``:
    why a server pod does not run (`status.pods.pod_problem`), said while rolling out."""
    replicas = sum(d.get("status", {}).get("replicas", 0) for d in deployments)
    ready = sum(ready_replicas(d) for d in deployments)
    if problem is not None:
        verdict, reason, message = False, problem[0], problem[1]
    elif not deployments:
        verdict, reason, message = False, reasons.PENDING, "no inference server exists yet"
    elif servers_ready(deployments, expected):
        verdict, reason, message = True, reasons.AVAILABLE, f"{ready} replicas ready"
    else:
        verdict, reason = False, reasons.ROLLING_OUT
        message = f"{ready}/{max(expected, replicas)} replicas ready"
        if stuck is not None:
            reason, message = stuck[0], f"{message}; {stuck[1]}"
    return ModelDeploymentStatus(
        observed_generation=previous.observed_generation if problem else generation,
        replicas=replicas,
        ready_replicas=ready,
        url=url,
        model=model,
        canary_model=canary_model,
        conditions=set_condition(previous.conditions, reasons.READY, verdict, reason, message, generation),
    )


def ready_replicas(deployment: dict[str, Any] | None) -> int:
    return int(((deployment or {}).get("status") or {}).get("readyReplicas", 0))


def ready_side_tracks(owner: Owner, spec: ModelDeploymentSpec, deployments: dict[str, Any]) -> frozenset[str]:
    """The shadow and A/B arms with a ready replica (by Deployment name in `deployments`): the
    stable servers send requests to these only."""
    return frozenset(
        track
        for track, _ in side_tracks(spec)
        if ready_replicas(deployments.get(track_name(owner, track))) >= 1
    )


def side_status(
    owner: Owner,
    spec: ModelDeploymentSpec,
    deployments: dict[str, Any],
    side: SideTracks,
    stable_model: ResolvedModel | None,
) -> tuple[TrackStatus | None, list[TrackStatus] | None]:
    """status.shadow and status.abTest (the control arm first): what each serves, whether the stable
    servers route to it, and the share it gets now."""
    models = {t: side.resolved.get(t) or ResolvedModel(uri=source.uri) for t, source in side_tracks(spec)}

    def track(name: str, percent: int, waiting: str) -> TrackStatus:
        routed = name in side.ready
        return TrackStatus(
            name=name,
            model=models[name],
            ready_replicas=ready_replicas(deployments.get(track_name(owner, name))),
            routed=routed,
            percent=percent if routed else 0,
            message="" if routed else waiting,
        )

    shadow = None
    if spec.shadow is not None:
        shadow = track(SHADOW, spec.shadow.percent, "no ready replica yet: nothing mirrored")
    arms = None
    if spec.ab_test is not None:
        ab = spec.ab_test
        weights, control = ab_weights(ab, side.ready), ab.control
        lent = weights[control.name] - control.weight_percent
        arms = [
            TrackStatus(
                name=control.name,
                model=stable_model,
                ready_replicas=ready_replicas(deployments.get(owner.name)),
                routed=True,
                percent=weights[control.name],
                message=f"served by stable; +{lent}% of arms not ready yet" if lent else "served by stable",
            )
        ]
        arms += [
            track(
                v.name,
                v.weight_percent,
                f"no ready replica yet: its {v.weight_percent}% goes to {control.name}",
            )
            for v in ab.arms
        ]
    return shadow, arms
