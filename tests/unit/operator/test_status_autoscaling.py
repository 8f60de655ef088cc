"""The Autoscaling condition, from HPA statuses as kube-controller-manager writes them (its reasons
and messages from pkg/controller/podautoscaler), and the trigger that skips metric-only updates."""

from __future__ import annotations

from typing import Any

import pytest

from kubeloop.api.deployment import Autoscaling
from kubeloop.contracts.autoscaling import INFLIGHT_METRIC
from kubeloop_operator.conditions import find
from kubeloop_operator.handlers.serving import scaling_state
from kubeloop_operator.reconcile.serving import reconcile_model_deployment
from kubeloop_operator.status.autoscaling import autoscaling_condition
from tests.unit.operator.world import MODEL, NS, World, condition

pytestmark = pytest.mark.unit

IN_FLIGHT = Autoscaling(metric="inFlight", target_in_flight=2.5)
CPU = Autoscaling()
ABLE = {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"}
NO_CUSTOM_METRICS = (
    f"the HPA was unable to compute the replica count: unable to get metric {INFLIGHT_METRIC}: unable to "
    "fetch metrics from custom metrics API: no custom metrics API (custom.metrics.k8s.io) registered"
)


def hpa(*conditions: dict[str, str], current: int = 2, desired: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"name": "churn"},
        "spec": {"minReplicas": 2, "maxReplicas": 4},
        "status": {"currentReplicas": current, "desiredReplicas": desired, "conditions": list(conditions)},
    }


def active(status: str, reason: str, message: str = "") -> dict[str, str]:
    return {"type": "ScalingActive", "status": status, "reason": reason, "message": message}


def autoscaling(found: dict[str, Any] | None, spec: Autoscaling = CPU) -> Any:
    return find(autoscaling_condition([], found, spec, 3), "Autoscaling")


def test_unknown_until_the_controller_reports() -> None:
    for found in (None, hpa(), hpa(ABLE)):
        verdict = autoscaling(found)
        assert (verdict.status, verdict.reason) == ("Unknown", "Pending"), found
        assert verdict.observed_generation == 3


def test_a_metric_it_cannot_read_is_false_with_the_controllers_words_and_where_the_metric_comes_from() -> (
    None
):
    verdict = autoscaling(hpa(ABLE, active("False", "FailedGetPodsMetric", NO_CUSTOM_METRICS)), IN_FLIGHT)
    assert (verdict.status, verdict.reason) == ("False", "FailedGetPodsMetric")
    assert verdict.message.startswith(NO_CUSTOM_METRICS), verdict.message
    assert "prometheus-adapter" in verdict.message and "prometheusAdapter.enabled" in verdict.message

    no_cpu = "the HPA was unable to compute the replica count: failed to get cpu utilization"
    verdict = autoscaling(hpa(ABLE, active("False", "FailedGetResourceMetric", no_cpu)))
    assert (verdict.status, verdict.reason) == ("False", "FailedGetResourceMetric")
    assert no_cpu in verdict.message and "metrics-server" in verdict.message


def test_a_target_it_cannot_scale_is_false_with_its_reason() -> None:
    cannot = {"type": "AbleToScale", "status": "False", "reason": "FailedGetScale", "message": "no scale"}
    verdict = autoscaling(hpa(cannot, active("True", "ValidMetricFound")))
    assert (verdict.status, verdict.reason, verdict.message) == ("False", "FailedGetScale", "no scale")


def test_scaling_says_replicas_range_metric_and_a_limit() -> None:
    valid = active("True", "ValidMetricFound", f"... from pods metric {INFLIGHT_METRIC}")
    within = {"type": "ScalingLimited", "status": "False", "reason": "DesiredWithinRange"}
    verdict = autoscaling(hpa(ABLE, valid, within, current=2, desired=3), IN_FLIGHT)
    assert (verdict.status, verdict.reason) == ("True", "ValidMetricFound")
    assert verdict.message == "replicas 2, desired 3, range 2 to 4; on requests in flight per pod, target 2.5"

    too_many = {
        "type": "ScalingLimited",
        "status": "True",
        "reason": "TooManyReplicas",
        "message": "the desired replica count is more than the maximum replica count",
    }
    verdict = autoscaling(hpa(ABLE, valid, too_many, current=4, desired=4))
    assert verdict.message == (
        "replicas 4, desired 4, range 2 to 4; on CPU utilization, target 70%: limited, the desired replica "
        "count is more than the maximum replica count"
    )


def test_only_what_the_condition_shows_triggers_a_reconcile() -> None:
    before = hpa(ABLE, active("True", "ValidMetricFound"))
    metrics_moved = {**before, "status": {**before["status"], "currentMetrics": [{"type": "Pods"}]}}
    assert scaling_state(metrics_moved) == scaling_state(before)
    assert scaling_state(hpa(ABLE, active("True", "ValidMetricFound"), desired=3)) != scaling_state(before)
    assert scaling_state(hpa(ABLE, active("False", "FailedGetPodsMetric"))) != scaling_state(before)
    assert scaling_state({"metadata": {"name": "new"}}) == (None, None)


def test_the_reconcile_reads_the_hpas_status_into_the_condition_and_writes_only_changes(world: World) -> None:
    world.create(
        "ModelDeployment", "churn", {**MODEL, "autoscaling": {"metric": "inFlight", "targetInFlight": 4}}
    )
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert condition(world.status("ModelDeployment", "churn"), "Autoscaling")["status"] == "Unknown"

    failing = hpa(ABLE, active("False", "FailedGetPodsMetric", NO_CUSTOM_METRICS))["status"]
    world.set_status("HorizontalPodAutoscaler", "churn", failing)
    reconcile_model_deployment(world.ctx, NS, "churn")
    found = condition(world.status("ModelDeployment", "churn"), "Autoscaling")
    assert (found["status"], found["reason"]) == ("False", "FailedGetPodsMetric")
    assert "prometheus-adapter" in found["message"]

    world.api.requests.clear()
    reconcile_model_deployment(world.ctx, NS, "churn")
    assert world.api.count("PUT") == 0, "the same HPA status writes nothing"

    scaling = hpa(ABLE, active("True", "ValidMetricFound"), current=2, desired=3)["status"]
    world.set_status("HorizontalPodAutoscaler", "churn", scaling)
    reconcile_model_deployment(world.ctx, NS, "churn")
    found = condition(world.status("ModelDeployment", "churn"), "Autoscaling")
    assert (found["status"], found["reason"]) == ("True", "ValidMetricFound")
    assert found["message"].startswith("replicas 2, desired 3, range 2 to 4;"), found
