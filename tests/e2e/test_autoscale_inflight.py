"""Autoscaling on requests in flight, on real pods: prometheus-adapter serves the servers' in-flight gauge
through the custom metrics API, and the HPA of a ModelDeployment with `autoscaling.metric: inFlight` adds
replicas under a load step well above its target, then scales back once the load stops."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.autoscale import (
    MAX_REPLICAS,
    custom_metric,
    custom_metrics_available,
    ensure_adapter,
    load_step,
    model_deployment,
    ready,
    scaling,
    upload_model,
)
from tests.e2e.platform import Platform, namespace
from tests.e2e.test_loop import record
from tests.fixtures.cluster import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

NAME = "cnn"
TARGET = 2  # requests in flight per pod
CONCURRENCY = 16  # clients sending back to back: desired replicas ceil(16 / 2) = 8, capped at MAX_REPLICAS


@pytest.fixture(scope="module")
def inflight_namespace(platform: Platform) -> Iterator[str]:
    if platform.target.mode != "local" and not custom_metrics_available(platform):
        pytest.skip("no custom metrics API there: KUBELOOP_PROMETHEUS_ADAPTER=1 hack/platform.sh up-existing")
    ensure_adapter(platform)
    with namespace(platform, f"kl-e2e-inflight-{uuid.uuid4().hex[:6]}") as name:
        yield name


def test_hpa_scales_on_in_flight_requests_and_back(platform: Platform, inflight_namespace: str) -> None:
    ns = inflight_namespace
    uri, body = upload_model(platform, ns)
    autoscaling = {"metric": "inFlight", "targetInFlight": TARGET, "scaleDownStabilizationSeconds": 15}
    platform.apply(model_deployment(NAME, uri, autoscaling), ns)
    platform.wait_status("modeldeployment", NAME, ns, ready, 300, f"{NAME} Ready")
    hpa = platform.kubectl.get("hpa", NAME, ns)
    assert hpa is not None and hpa["spec"]["metrics"][0]["type"] == "Pods"
    # The adapter serves the pod's gauge (idle: 0) before any load: the rule and the scrape labels agree.
    values = wait_for(
        lambda: custom_metric(platform, ns), 120, interval=5, what="the in-flight metric of the pod"
    )
    assert all(v == 0 for v in values.values()), values

    result = load_step(platform, ns, NAME, body, CONCURRENCY, load_seconds=90, settle_seconds=300)
    record("autoscale_inflight", result)
    during = [r for r in result["timeline"] if r["phase"] == "load"]
    assert result["peak_replicas"] > 1, f"the HPA never added replicas: {during}"
    assert max(r["metric"] or 0 for r in during) > TARGET, "the metric rose above its target under load"
    assert result["peak_replicas"] <= MAX_REPLICAS
    # Connections past their age limit end (kubeloop_serving.connections): the clients reconnect
    # through the Service and the pods added get requests too.
    assert result["peak_busy_pods"] > 1, f"only one pod ever had requests in flight: {during}"
    assert result["seconds_to_scale_back"] is not None, f"not back to one replica: {result['timeline'][-5:]}"
    assert result["load"]["failed"] == 0, result["load"]
    # The ModelDeployment's own status says the HPA reads its metric (False without the adapter).
    md = platform.wait_status("modeldeployment", NAME, ns, scaling, 60, "Autoscaling True")
    found = scaling(md["status"])
    assert found is not None and found["reason"] == "ValidMetricFound", found
    assert "requests in flight per pod, target 2" in found["message"], found
