"""ModelDeployment status, derived from its Deployments."""

from __future__ import annotations

from typing import Any

from kubeloop_operator.conditions import Conditions, set_condition


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
    current: dict[str, Any],
    deployments: list[dict[str, Any]],
    generation: int,
    expected: int,
    url: str,
    model: dict[str, Any] | None,
    canary_model: dict[str, Any] | None,
    problem: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Ready when each track has rolled out and at least `expected` replicas are ready."""
    replicas = sum(d.get("status", {}).get("replicas", 0) for d in deployments)
    ready = sum(d.get("status", {}).get("readyReplicas", 0) for d in deployments)
    conditions: Conditions = list(current.get("conditions") or [])
    if problem is not None:
        conditions = set_condition(conditions, "Ready", False, problem[0], problem[1], generation)
    elif not deployments:
        conditions = set_condition(
            conditions, "Ready", False, "Pending", "no inference server exists yet", generation
        )
    elif all(rolled_out(d) for d in deployments) and ready >= expected:
        conditions = set_condition(
            conditions, "Ready", True, "Available", f"{ready} replicas ready", generation
        )
    else:
        message = f"{ready}/{max(expected, replicas)} replicas ready"
        conditions = set_condition(conditions, "Ready", False, "RollingOut", message, generation)
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "replicas": replicas,
        "readyReplicas": ready,
        "url": url,
        "conditions": conditions,
    }
    if model is not None:
        status["model"] = model
    if canary_model is not None:
        status["canaryModel"] = canary_model
    return status
