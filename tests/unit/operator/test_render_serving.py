from __future__ import annotations

from typing import Any

import pytest

from kubeloop.api.deployment import ModelDeploymentSpec, ResolvedModel
from kubeloop_operator.render.serving import canary_replicas, expected_replicas, render_serving
from kubeloop_operator.settings import OperatorSettings
from tests.unit.operator.conftest import owner_of

pytestmark = pytest.mark.unit


def spec(**fields: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"model": {"uri": "models:/churn@champion"}, **fields})


def by_kind(children: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for child in children:
        out.setdefault(child["kind"], []).append(child)
    return out


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_children_and_autoscaling(settings: OperatorSettings) -> None:
    kinds = by_kind(
        render_serving(owner_of("ModelDeployment"), spec(replicas={"min": 2, "max": 5}), settings)
    )
    assert set(kinds) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    hpa = kinds["HorizontalPodAutoscaler"][0]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert "replicas" not in kinds["Deployment"][0]["spec"], "the HPA owns the stable track's replicas"


def test_resolved_version_pins_the_pods(settings: OperatorSettings) -> None:
    resolved = ResolvedModel(uri="models:/churn/7", version="7")
    deployment = render_serving(owner_of("ModelDeployment"), spec(), settings, resolved)[0]
    env = env_of(deployment)
    assert env["KUBELOOP_SERVING_MODEL_URI"] == "models:/churn/7"
    assert env["KUBELOOP_SERVING_MODEL_VERSION"] == "7"
    assert deployment["spec"]["template"]["metadata"]["annotations"]["kubeloop.io/model-version"] == "7"


def test_batching_payload_logging_and_pvc(settings: OperatorSettings) -> None:
    children = render_serving(
        owner_of("ModelDeployment"),
        spec(
            batching={"maxBatchSize": 64, "maxWaitMs": 5},
            payloadLogging={
                "sinkUri": "file:///var/payloads",
                "sampleRate": 0.25,
                "persistentVolumeClaim": "logs",
            },
        ),
        settings,
    )
    deployment = by_kind(children)["Deployment"][0]
    env = env_of(deployment)
    assert env["KUBELOOP_SERVING_MAX_BATCH_SIZE"] == "64"
    assert env["KUBELOOP_SERVING_MAX_BATCH_WAIT_MS"] == "5.0"
    assert env["KUBELOOP_SERVING_PAYLOAD_LOG_URI"] == "file:///var/payloads"
    assert env["KUBELOOP_SERVING_PAYLOAD_LOG_SAMPLE_RATE"] == "0.25"
    pod = deployment["spec"]["template"]["spec"]
    assert {"name": "payload-log", "persistentVolumeClaim": {"claimName": "logs"}} in pod["volumes"]
    assert {"name": "payload-log", "mountPath": "/var/payloads"} in pod["containers"][0]["volumeMounts"]


@pytest.mark.parametrize(
    ("stable", "percent", "canary"), [(1, 10, 1), (4, 20, 1), (9, 10, 1), (3, 50, 3), (2, 0, 0)]
)
def test_canary_replica_share(stable: int, percent: int, canary: int) -> None:
    assert canary_replicas(stable, percent) == canary


def test_canary_track(settings: OperatorSettings) -> None:
    md = spec(
        replicas={"min": 4, "max": 8}, canary={"model": {"uri": "models:/churn/9"}, "trafficPercent": 20}
    )
    deployments = by_kind(render_serving(owner_of("ModelDeployment", "churn"), md, settings))["Deployment"]
    stable, canary = deployments
    assert canary["metadata"]["name"] == "churn-canary"
    assert canary["spec"]["replicas"] == 1
    assert env_of(canary)["KUBELOOP_SERVING_MODEL_URI"] == "models:/churn/9"
    assert canary["spec"]["selector"]["matchLabels"]["kubeloop.io/track"] == "canary"
    assert stable["spec"]["selector"]["matchLabels"]["kubeloop.io/track"] == "stable"
    assert expected_replicas(md) == 5


def test_service_selects_both_tracks(settings: OperatorSettings) -> None:
    md = spec(canary={"model": {"uri": "models:/churn/9"}, "trafficPercent": 50})
    kinds = by_kind(render_serving(owner_of("ModelDeployment"), md, settings))
    selector = kinds["Service"][0]["spec"]["selector"].items()
    for deployment in kinds["Deployment"]:
        assert set(selector) <= set(deployment["spec"]["template"]["metadata"]["labels"].items())


def test_service_monitor_only_when_asked(settings: OperatorSettings) -> None:
    assert "ServiceMonitor" not in by_kind(render_serving(owner_of("ModelDeployment"), spec(), settings))
    kinds = by_kind(render_serving(owner_of("ModelDeployment"), spec(), settings, service_monitor=True))
    assert kinds["ServiceMonitor"][0]["spec"]["endpoints"][0]["path"] == "/metrics"


def test_gpu_server_and_probes(settings: OperatorSettings) -> None:
    deployment = render_serving(owner_of("ModelDeployment"), spec(resources={"gpus": 1}), settings)[0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def server_pod(children: list[dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = by_kind(children)["Deployment"][0]["spec"]["template"]["spec"]
    return pod


def test_registry_models_tell_the_server_where_the_registry_is(settings: OperatorSettings) -> None:
    pinned = ResolvedModel(uri="models:/churn/3", version="3")
    env = env_of(
        by_kind(render_serving(owner_of("ModelDeployment"), spec(), settings, pinned))["Deployment"][0]
    )
    assert env["KUBELOOP_SERVING_MODEL_URI"] == "models:/churn/3"
    assert env["MLFLOW_TRACKING_URI"] == settings.mlflow_tracking_uri
    plain = spec(model={"uri": "s3://models/churn.onnx"})
    env = env_of(by_kind(render_serving(owner_of("ModelDeployment"), plain, settings))["Deployment"][0])
    assert "MLFLOW_TRACKING_URI" not in env


def test_identity_and_credentials_by_reference(settings: OperatorSettings) -> None:
    md = spec(
        serviceAccountName="model-reader",
        envFrom=[{"secretRef": {"name": "s3-credentials"}}, {"configMapRef": {"name": "s3-endpoint"}}],
        env=[
            {"name": "MLFLOW_TRACKING_TOKEN", "valueFrom": {"secretKeyRef": {"name": "mlflow", "key": "t"}}}
        ],
    )
    pod = server_pod(render_serving(owner_of("ModelDeployment"), md, settings))
    assert pod["serviceAccountName"] == "model-reader"
    assert pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]
    assert container["envFrom"] == [
        {"secretRef": {"name": "s3-credentials"}},
        {"configMapRef": {"name": "s3-endpoint"}},
    ]
    assert {
        "name": "MLFLOW_TRACKING_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "mlflow", "key": "t"}},
    } in container["env"]
    assert "serviceAccountName" not in server_pod(
        render_serving(owner_of("ModelDeployment"), spec(), settings)
    )


def test_a_stopping_server_keeps_serving_while_endpoints_converge(settings: OperatorSettings) -> None:
    pod = server_pod(render_serving(owner_of("ModelDeployment"), spec(), settings))
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop > 0
    assert pod["terminationGracePeriodSeconds"] > pre_stop, "the drain after the pre-stop needs time too"
    assert pod["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
