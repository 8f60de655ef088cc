"""The canary rollout through the real reconcile against the in-memory API server: what the routes
ConfigMap says, how the canary is sized, the stable track untouched by weights, promotion, drain."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubeloop.contracts.routing import ROUTES_KEY
from kubeloop_operator.kube import path
from kubeloop_operator.prometheus import Prometheus
from kubeloop_operator.reconcile import reconcile_model_deployment
from tests.fixtures.ports import free_port
from tests.unit.operator.world import NS, World, condition, roll_out

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ANALYSED: dict[str, Any] = {
    "model": {"uri": "s3://models/churn-1.onnx"},
    "replicas": {"min": 4, "max": 8},
    "canary": {
        "model": {"uri": "s3://models/churn-2.onnx"},
        "analysis": {"steps": [10, 50], "intervalSeconds": 60, "warmupSeconds": 0},
    },
}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(world: World) -> Clock:
    clock = Clock()
    world.ctx.wall_clock = clock
    return clock


def weight(world: World, name: str = "churn") -> int:
    routes = json.loads(world.get("ConfigMap", f"{name}-routes")["data"][ROUTES_KEY])
    return int((routes.get("canary") or {}).get("weight_percent", 0))


def rollout(world: World) -> dict[str, Any]:
    found: dict[str, Any] = world.status("ModelDeployment", "churn")["rollout"]
    return found


def template(world: World, name: str) -> dict[str, Any]:
    found: dict[str, Any] = world.get("Deployment", name)["spec"]["template"]
    return found


def scale_stable(world: World, replicas: int) -> None:
    """What the HPA does: the stable Deployment's spec.replicas."""
    deployment = world.get("Deployment", "churn")
    deployment["spec"]["replicas"] = replicas
    world.api.store(path("Deployment", NS, "churn"), deployment)


def test_no_prometheus_holds_an_analysed_canary_at_weight_zero(world: World, clock: Clock) -> None:
    world.create("ModelDeployment", "churn", ANALYSED)
    reconcile_model_deployment(world.ctx, NS, "churn")
    progressing = condition(world.status("ModelDeployment", "churn"), "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "PrometheusNotConfigured")
    assert rollout(world)["phase"] == "Idle" and weight(world) == 0
    assert world.get("Deployment", "churn-canary")["spec"]["replicas"] == 0
    assert ("Warning", "PrometheusNotConfigured") in [e[:2] for e in world.events]


def test_the_weight_waits_for_a_ready_canary_and_never_restarts_stable(world: World, clock: Clock) -> None:
    world.ctx.prometheus = Prometheus(f"http://127.0.0.1:{free_port()}", timeout=2)  # nobody listens
    world.create("ModelDeployment", "churn", ANALYSED)
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert weight(world) == 0, "no request for a canary that is not Ready (KServe #5983)"
    assert world.get("Deployment", "churn-canary")["spec"]["replicas"] == 1  # ceil(4 * 10%)
    assert condition(world.status("ModelDeployment", "churn"), "Progressing")["reason"] == "CanaryPending"
    assert world.names("Service") == ["churn", "churn-canary", "churn-grpc"]
    stable_before = template(world, "churn")

    roll_out(world, "churn")
    roll_out(world, "churn-canary")
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert weight(world) == 10 and rollout(world)["step"] == 1
    assert template(world, "churn") == stable_before, "a weight is the routes ConfigMap's alone"
    assert ("Normal", "StepStarted") in [e[:2] for e in world.events]

    clock.now += timedelta(seconds=61)  # the analysis is due: Prometheus is unreachable
    reconcile_model_deployment(world.ctx, NS, "churn")
    progressing = condition(world.status("ModelDeployment", "churn"), "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("Unknown", "MetricsUnavailable")
    assert weight(world) == 10 and rollout(world)["step"] == 1 and rollout(world)["failures"] == 0


def test_canary_replicas_follow_the_stable_tracks_current_replicas(world: World, clock: Clock) -> None:
    world.create("ModelDeployment", "churn", ANALYSED)
    world.set_status("ModelDeployment", "churn", {})
    reconcile_model_deployment(world.ctx, NS, "churn")
    scale_stable(world, 8)  # the HPA scaled stable up
    world.ctx.remember_applied(("ModelDeployment", NS, "churn"), None)
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert world.get("Deployment", "churn-canary")["spec"]["replicas"] == 0, "Idle: no Prometheus"
    world.ctx.prometheus = Prometheus(f"http://127.0.0.1:{free_port()}", timeout=2)
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert world.get("Deployment", "churn-canary")["spec"]["replicas"] == 1  # ceil(8 * 10%)


def test_scaling_the_canary_with_stable_neither_drops_its_weight_nor_restarts_its_step(
    world: World, clock: Clock
) -> None:
    world.ctx.prometheus = Prometheus(f"http://127.0.0.1:{free_port()}", timeout=2)  # nobody listens
    world.create("ModelDeployment", "churn", ANALYSED)
    reconcile_model_deployment(world.ctx, NS, "churn")
    roll_out(world, "churn")
    roll_out(world, "churn-canary")
    reconcile_model_deployment(world.ctx, NS, "churn")
    started = rollout(world)["stepStartedAt"]
    assert weight(world) == 10
    scale_stable(world, 20)  # the HPA: the canary follows, ceil(20 * 10%) = 2
    for _ in range(2):  # the Deployment controller has not yet observed the canary's new replicas
        world.ctx.remember_applied(("ModelDeployment", NS, "churn"), None)
        reconcile_model_deployment(world.ctx, NS, "churn")
        canary = world.get("Deployment", "churn-canary")
        assert canary["spec"]["replicas"] == 2 and canary["status"]["observedGeneration"] == 1
        assert weight(world) == 10 and rollout(world)["stepStartedAt"] == started
    roll_out(world, "churn-canary")
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert weight(world) == 10 and rollout(world)["stepStartedAt"] == started


def test_a_fixed_weight_is_written_once_the_canary_is_ready(world: World, clock: Clock) -> None:
    fixed = {**ANALYSED, "canary": {"model": {"uri": "s3://models/churn-2.onnx"}, "trafficPercent": 30}}
    world.create("ModelDeployment", "churn", fixed)
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert weight(world) == 0 and world.get("Deployment", "churn-canary")["spec"]["replicas"] == 2
    roll_out(world, "churn-canary")
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert weight(world) == 30
    assert condition(world.status("ModelDeployment", "churn"), "Progressing")["reason"] == "FixedWeight"


def promoting(world: World) -> None:
    """A canary whose last step passed (the status is the rollout's memory)."""
    world.create("ModelDeployment", "churn", ANALYSED)
    world.ctx.prometheus = Prometheus(f"http://127.0.0.1:{free_port()}", timeout=2)
    reconcile_model_deployment(world.ctx, NS, "churn")
    roll_out(world, "churn")
    roll_out(world, "churn-canary")
    status = world.status("ModelDeployment", "churn")
    status["rollout"] = {
        **status["rollout"],
        "phase": "Promoting",
        "canaryUri": "s3://models/churn-2.onnx",
        "step": 2,
        "weight": 50,
    }
    world.set_status("ModelDeployment", "churn", status)


def model_uri(world: World, name: str) -> str:
    env = {e["name"]: e.get("value") for e in template(world, name)["spec"]["containers"][0]["env"]}
    return str(env["KUBELOOP_SERVING_MODEL_URI"])


def test_promotion_rolls_stable_to_the_canary_before_the_weight_goes(world: World, clock: Clock) -> None:
    promoting(world)
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert model_uri(world, "churn") == "s3://models/churn-2.onnx", "stable rolls to the canary's model"
    assert rollout(world)["phase"] == "Promoting" and weight(world) == 50, "until stable has rolled"

    roll_out(world, "churn")
    reconcile_model_deployment(world.ctx, NS, "churn")
    status = world.status("ModelDeployment", "churn")
    assert status["rollout"]["phase"] == "Promoted" and weight(world) == 0
    assert status["promotedModel"] == {
        "uri": "s3://models/churn-2.onnx",
        "replaces": "s3://models/churn-1.onnx",
    }
    assert status["model"]["uri"] == "s3://models/churn-2.onnx"
    assert world.get("Deployment", "churn-canary")["spec"]["replicas"] == 2, "kept while routes propagate"
    assert ("Normal", "Promoted") in [e[:2] for e in world.events]

    clock.now += timedelta(seconds=world.ctx.settings.routes_propagation_seconds)
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert world.get("Deployment", "churn-canary")["spec"]["replicas"] == 0
    assert model_uri(world, "churn") == "s3://models/churn-2.onnx", "stable keeps the promoted model"

    world.edit_spec("ModelDeployment", "churn", {**ANALYSED, "model": {"uri": "s3://models/churn-3.onnx"}})
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert model_uri(world, "churn") == "s3://models/churn-3.onnx", "a new spec.model wins"
    assert "promotedModel" not in world.status("ModelDeployment", "churn")


def test_a_rollback_leaves_stable_alone_and_drains_the_canary(world: World, clock: Clock) -> None:
    promoting(world)
    status = world.status("ModelDeployment", "churn")
    status["rollout"] = {**status["rollout"], "phase": "Progressing", "step": 1, "weight": 10}
    world.set_status("ModelDeployment", "churn", status)
    stable_before = template(world, "churn")
    world.edit_spec("ModelDeployment", "churn", {**ANALYSED, "canary": {**ANALYSED["canary"], "abort": True}})
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert rollout(world)["phase"] == "Aborted" and weight(world) == 0
    assert condition(world.status("ModelDeployment", "churn"), "Progressing")["status"] == "False"
    assert template(world, "churn") == stable_before
    assert world.get("Deployment", "churn-canary")["spec"]["replicas"] == 1
    clock.now += timedelta(seconds=world.ctx.settings.routes_propagation_seconds)
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert world.get("Deployment", "churn-canary")["spec"]["replicas"] == 0


def test_removing_the_canary_removes_its_service_and_its_route(world: World, clock: Clock) -> None:
    world.create("ModelDeployment", "churn", ANALYSED)
    reconcile_model_deployment(world.ctx, NS, "churn")
    world.edit_spec("ModelDeployment", "churn", {k: v for k, v in ANALYSED.items() if k != "canary"})
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert world.names("Service") == ["churn", "churn-grpc"] and world.names("Deployment") == ["churn"]
    status = world.status("ModelDeployment", "churn")
    assert "rollout" not in status and all(c["type"] != "Progressing" for c in status["conditions"])
    assert "canary" not in json.loads(world.get("ConfigMap", "churn-routes")["data"][ROUTES_KEY])
