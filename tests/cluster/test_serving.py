"""ModelDeployment -> Deployment, Service, HPA, PDB; Ready from real controller status; canary; edits roll."""

from __future__ import annotations

from typing import Any

import pytest

from kubeloop.contracts.routing import ROUTES_KEY, Routes
from tests.cluster.manifests import model_deployment
from tests.fixtures.cluster import Kubectl, OperatorProcess, wait_for

pytestmark = pytest.mark.cluster


def ready(kubectl: Kubectl, namespace: str, name: str, generation: int = 1) -> dict[str, Any] | None:
    obj = kubectl.get("modeldeployment", name, namespace) or {}
    status = obj.get("status") or {}
    condition: dict[str, Any] = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
    fresh = status.get("observedGeneration") == generation
    return status if condition.get("status") == "True" and fresh else None


def env(deployment: dict[str, Any]) -> dict[str, str]:
    return {
        e["name"]: e.get("value", "") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }


def test_children_ready_and_status(operator: OperatorProcess, namespace: str) -> None:
    kubectl = operator.cluster.kubectl
    kubectl.apply(model_deployment("churn", replicas={"min": 2, "max": 4}), namespace)
    status = wait_for(lambda: ready(kubectl, namespace, "churn"), 90, what="Ready")
    assert status["readyReplicas"] == 2
    assert status["url"] == f"http://churn.{namespace}.svc.cluster.local:8080/v2/models/churn"
    assert status["model"] == {"uri": "models:/churn/1", "version": "1"}
    hpa = kubectl.get("hpa", "churn", namespace)
    assert hpa and (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    assert kubectl.get("pdb", "churn", namespace)
    service = kubectl.get("service", "churn", namespace)
    assert service and service["spec"]["ports"][0]["port"] == 8080
    pods = kubectl.items("pods", namespace, "kubeloop.io/modeldeployment=churn")
    assert all(p["spec"]["securityContext"]["runAsNonRoot"] for p in pods)
    listed = kubectl.run("get", "kubeloop", "-n", namespace).stdout
    assert "modeldeployment.kubeloop.io/churn" in listed and "True" in listed


def test_metric_series_go_with_the_object(operator: OperatorProcess, namespace: str) -> None:
    kubectl = operator.cluster.kubectl
    kubectl.apply(model_deployment("gone"), namespace)
    labels = {"namespace": namespace, "modeldeployment": "gone"}
    wait_for(
        lambda: operator.metric("kubeloop_modeldeployment_ready_replicas", **labels) == 1, 90, what="series"
    )
    kubectl.run("delete", "modeldeployment", "gone", "-n", namespace)
    names = [f"kubeloop_modeldeployment_{n}" for n in ("ready_replicas", "replicas", "min_replicas")]
    assert wait_for(
        lambda: all(operator.metric(name, **labels) is None for name in names), 30, what="series removed"
    )


def test_canary_added_then_removed(operator: OperatorProcess, namespace: str) -> None:
    kubectl = operator.cluster.kubectl
    kubectl.apply(model_deployment("ab"), namespace)
    wait_for(lambda: ready(kubectl, namespace, "ab"), 60, what="Ready")
    kubectl.apply(
        model_deployment("ab", canary={"model": {"uri": "models:/churn/2"}, "trafficPercent": 50}), namespace
    )
    status = wait_for(lambda: ready(kubectl, namespace, "ab", 2), 60, what="Ready with canary")
    assert status["canaryModel"]["version"] == "2" and status["readyReplicas"] == 2
    canary = kubectl.get("deployment", "ab-canary", namespace)
    assert canary and env(canary)["KUBELOOP_SERVING_MODEL_URI"] == "models:/churn/2"
    kubectl.apply(model_deployment("ab"), namespace)
    wait_for(lambda: kubectl.get("deployment", "ab-canary", namespace) is None, 60, what="canary pruned")
    wait_for(lambda: ready(kubectl, namespace, "ab", 3), 60, what="Ready after removing the canary")


SHADOW = {"model": {"uri": "models:/churn/2"}, "percent": 20}
AB_TEST = {
    "header": "x-user-id",
    "variants": [
        {"name": "control", "weightPercent": 70},
        {"name": "forest", "model": {"uri": "s3://models/forest.onnx"}, "weightPercent": 30},
    ],
}


def routed(kubectl: Kubectl, namespace: str, name: str, generation: int) -> dict[str, Any] | None:
    """Ready, and the shadow and every A/B arm are sent requests."""
    status = ready(kubectl, namespace, name, generation)
    arms = (status or {}).get("abTest") or []
    if status and status.get("shadow", {}).get("routed") and arms and all(a["routed"] for a in arms):
        return status
    return None


def test_shadow_and_ab_test_added_then_removed(operator: OperatorProcess, namespace: str) -> None:
    kubectl = operator.cluster.kubectl
    kubectl.apply(model_deployment("side", shadow=SHADOW, abTest=AB_TEST), namespace)
    status = wait_for(lambda: routed(kubectl, namespace, "side", 1), 90, what="shadow and arms routed")
    assert status["shadow"]["model"] == {"uri": "models:/churn/2", "version": "2"}
    assert [(a["name"], a["percent"]) for a in status["abTest"]] == [("control", 70), ("forest", 30)]
    assert status["readyReplicas"] == 3
    for track in ("shadow", "forest"):
        deployment = kubectl.get("deployment", f"side-{track}", namespace)
        assert deployment and env(deployment)["KUBELOOP_SERVING_TRACK"] == track
        service = kubectl.get("service", f"side-{track}", namespace)
        assert service and service["spec"]["selector"]["kubeloop.io/track"] == track
        assert [p["name"] for p in service["spec"]["ports"]] == ["http", "grpc"], "stable forwards gRPC too"
    stable = kubectl.get("service", "side", namespace)
    assert stable and stable["spec"]["selector"]["kubeloop.io/track"] == "stable"
    routes = wait_for(
        lambda: Routes.model_validate_json(
            (kubectl.get("configmap", "side-routes", namespace) or {})["data"][ROUTES_KEY]
        ),
        30,
        what="routes",
    )
    assert routes.shadow and routes.shadow.percent == 20
    assert routes.shadow.url == f"http://side-shadow.{namespace}.svc.cluster.local:8080"
    assert routes.shadow.grpc_target == f"side-shadow.{namespace}.svc.cluster.local:8081"
    assert routes.ab and [(v.name, v.weight_percent) for v in routes.ab.variants] == [
        ("control", 70),
        ("forest", 30),
    ]
    columns = kubectl.run("get", "modeldeployment", "side", "-n", namespace, "-o", "wide").stdout
    assert "x-user-id" in columns

    kubectl.apply(model_deployment("side"), namespace)
    for kind in ("deployment", "service"):
        for track in ("shadow", "forest"):
            wait_for(
                lambda k=kind, t=track: kubectl.get(k, f"side-{t}", namespace) is None,  # type: ignore[misc]
                60,
                what=f"{kind} side-{track} pruned",
            )
    status = wait_for(lambda: ready(kubectl, namespace, "side", 2), 60, what="Ready without them")
    assert "shadow" not in status and "abTest" not in status


def test_spec_edit_rolls_the_pods(operator: OperatorProcess, namespace: str) -> None:
    kubectl = operator.cluster.kubectl
    kubectl.apply(model_deployment("roll"), namespace)
    wait_for(lambda: ready(kubectl, namespace, "roll"), 60, what="Ready")
    kubectl.apply(
        model_deployment("roll", model={"uri": "models:/churn/5"}, batching={"maxBatchSize": 8}), namespace
    )
    status = wait_for(lambda: ready(kubectl, namespace, "roll", 2), 60, what="Ready at generation 2")
    assert status["model"]["version"] == "5"
    deployment = kubectl.get("deployment", "roll", namespace)
    assert deployment is not None
    assert env(deployment)["KUBELOOP_SERVING_MODEL_URI"] == "models:/churn/5"
    assert env(deployment)["KUBELOOP_SERVING_MAX_BATCH_SIZE"] == "8"

    def rolled() -> list[dict[str, Any]] | None:
        pods = [
            p
            for p in kubectl.items("pods", namespace, "kubeloop.io/modeldeployment=roll")
            if not p["metadata"].get("deletionTimestamp")
        ]
        return pods if pods and all(env_pod_uri(p) == "models:/churn/5" for p in pods) else None

    assert wait_for(rolled, 60, what="pods rolled to the new model")


def env_pod_uri(pod: dict[str, Any]) -> str:
    return str(
        next(
            e["value"]
            for e in pod["spec"]["containers"][0]["env"]
            if e["name"] == "KUBELOOP_SERVING_MODEL_URI"
        )
    )


def test_deleting_the_parent_leaves_no_orphans(operator: OperatorProcess, namespace: str) -> None:
    kubectl = operator.cluster.kubectl
    kubectl.apply(model_deployment("gone"), namespace)
    wait_for(lambda: ready(kubectl, namespace, "gone"), 60, what="Ready")
    kubectl.run("delete", "modeldeployment", "gone", "-n", namespace, "--wait=true")
    selector = "kubeloop.io/modeldeployment=gone"
    for kind in ("deployment", "service", "hpa", "pdb", "pods"):
        kubectl.wait_count(kind, namespace, selector, 0)
