"""The gRPC port on the server container and the Service, and the headless `<name>-grpc` Service."""

from __future__ import annotations

from typing import Any

import pytest

from kubeloop.api.deployment import ModelDeploymentSpec
from kubeloop_operator.render.serving import render_serving
from kubeloop_operator.settings import OperatorSettings
from kubeloop_serving.settings import ServingSettings
from tests.unit.operator.conftest import owner_of

pytestmark = pytest.mark.unit
GRPC_PORT = {"name": "grpc", "port": 8081, "targetPort": "grpc", "appProtocol": "grpc"}


def children(settings: OperatorSettings, **fields: Any) -> list[dict[str, Any]]:
    spec = ModelDeploymentSpec.model_validate({"model": {"uri": "s3://models/churn.onnx"}, **fields})
    return render_serving(owner_of("ModelDeployment", "churn"), spec, settings)


def named(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name)


def server(manifests: list[dict[str, Any]], name: str = "churn") -> dict[str, Any]:
    pod: dict[str, Any] = named(manifests, "Deployment", name)["spec"]["template"]["spec"]
    return dict(pod["containers"][0])


def test_grpc_is_on_by_default_with_a_port_and_a_headless_service(settings: OperatorSettings) -> None:
    manifests = children(settings)
    container = server(manifests)
    assert container["ports"] == [
        {"name": "http", "containerPort": 8080},
        {"name": "grpc", "containerPort": 8081},
    ]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert (
        ServingSettings(model_uri="/m.onnx", grpc_port=int(env["KUBELOOP_SERVING_GRPC_PORT"])).grpc_port
        == 8081
    )
    assert container["readinessProbe"]["httpGet"]["port"] == "http"  # probes stay on REST
    service = named(manifests, "Service", "churn")
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http"}, GRPC_PORT]
    headless = named(manifests, "Service", "churn-grpc")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["ports"] == [GRPC_PORT]
    assert headless["spec"]["selector"] == service["spec"]["selector"]  # the stable pods only
    assert headless["metadata"]["ownerReferences"] == service["metadata"]["ownerReferences"]


def test_grpc_off_renders_no_port_and_no_headless_service(settings: OperatorSettings) -> None:
    manifests = children(settings, grpc={"enabled": False})
    container = server(manifests)
    assert [port["name"] for port in container["ports"]] == ["http"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert env["KUBELOOP_SERVING_GRPC_PORT"] == "0"
    assert [port["name"] for port in named(manifests, "Service", "churn")["spec"]["ports"]] == ["http"]
    assert [m["metadata"]["name"] for m in manifests if m["kind"] == "Service"] == ["churn"]


def test_track_services_have_the_grpc_port_stable_forwards_calls_to(settings: OperatorSettings) -> None:
    manifests = children(
        settings, canary={"model": {"uri": "s3://models/churn-2.onnx"}, "trafficPercent": 10}
    )
    canary = named(manifests, "Service", "churn-canary")
    assert canary["spec"]["ports"][1] == {
        "name": "grpc",
        "port": 8081,
        "targetPort": "grpc",
        "appProtocol": "grpc",
    }
    assert [port["name"] for port in server(manifests, "churn-canary")["ports"]] == ["http", "grpc"]


def test_a_variant_cannot_take_the_headless_services_name() -> None:
    with pytest.raises(ValueError, match="explainer or grpc"):
        ModelDeploymentSpec.model_validate(
            {
                "model": {"uri": "s3://m.onnx"},
                "abTest": {
                    "header": "x-user",
                    "variants": [
                        {"name": "control", "weightPercent": 50},
                        {"name": "grpc", "model": {"uri": "s3://n.onnx"}, "weightPercent": 50},
                    ],
                },
            }
        )


def test_the_native_data_plane_is_asked_of_the_server_through_its_settings(
    settings: OperatorSettings,
) -> None:
    default = {e["name"]: e.get("value") for e in server(children(settings))["env"]}
    assert "KUBELOOP_SERVING_DATAPLANE" not in default  # the server's own default: python
    env = {e["name"]: e.get("value") for e in server(children(settings, dataPlane="native"))["env"]}
    assert (
        ServingSettings(model_uri="/m.onnx", dataplane=env["KUBELOOP_SERVING_DATAPLANE"]).dataplane
        == "native"
    )
