"""ModelDeployment status, derived from its Deployments."""

from __future__ import annotations

from typing import Any

from kubeloop.api.deployment import ModelDeploymentStatus, ResolvedModel
from kubeloop_operator import reasons
from kubeloop_operator.conditions import set_condition


def rolled_out(deployment: dict[str, Any]) -> bool:
    """The controller has seen the newest template and every replica runs it."""
    meta, spec, status = deployment["metadata"], deployment.get("spec", {}), deployment.get("status", {})
    wanted = spec.get("replicas", 1)
    return bool(
        status.get("observedGeneration", 0) >= meta.get("generation", 0)
        and status.get("updatedReplicas", 0) >= wanted
        and status.get("availableReplicas", 0) >= wanted
    )


def derive_serving_status(
    previous: ModelDeploymentStatus,
    deployments: list[dict[str, Any]],
    generation: int,
    expected: int,
    url: str,
    model: ResolvedModel | None,
    canary_model: ResolvedModel | None,
    problem: tuple[str, str] | None = None,
) -> ModelDeploymentStatus:
    """Ready when each track has rolled out and at least `expected` replicas are ready. Without a
    `problem` the children of `generation` were applied, so observedGeneration becomes it."""
    replicas = sum(d.get("status", {}).get("replicas", 0) for d in deployments)
    ready = sum(d.get("status", {}).get("readyReplicas", 0) for d in deployments)
    if problem is not None:
        verdict, reason, message = False, problem[0], problem[1]
    elif not deployments:
        verdict, reason, message = False, reasons.PENDING, "no inference server exists yet"
    elif all(rolled_out(d) for d in deployments) and ready >= expected:
        verdict, reason, message = True, reasons.AVAILABLE, f"{ready} replicas ready"
    else:
        verdict, reason = False, reasons.ROLLING_OUT
        message = f"{ready}/{max(expected, replicas)} replicas ready"
    return ModelDeploymentStatus(
        observed_generation=previous.observed_generation if problem else generation,
        replicas=replicas,
        ready_replicas=ready,
        url=url,
        model=model,
        canary_model=canary_model,
        conditions=set_condition(previous.conditions, reasons.READY, verdict, reason, message, generation),
    )
