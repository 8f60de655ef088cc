from __future__ import annotations

from typing import Any

import pytest

from kubeloop.api.deployment import ModelDeploymentSpec
from kubeloop.api.deployment_status import ResolvedModel
from kubeloop.contracts.routing import ROUTES_DIR, ROUTES_FILE, ROUTES_KEY, Routes
from kubeloop_operator.render.delivery import Delivery, Track
from kubeloop_operator.render.serving import expected_replicas, render_serving
from kubeloop_operator.rollout.machine import canary_replicas
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
    assert set(kinds) == {
        "Deployment",
        "Service",
        "ConfigMap",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
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
            batching={"maxBatchSize": 64, "maxWaitMs": 5, "maxRunMs": 25},
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
    assert env["KUBELOOP_SERVING_MAX_BATCH_RUN_MS"] == "25.0"
    assert env["KUBELOOP_SERVING_PAYLOAD_LOG_URI"] == "file:///var/payloads"
    assert env["KUBELOOP_SERVING_PAYLOAD_LOG_SAMPLE_RATE"] == "0.25"
    pod = deployment["spec"]["template"]["spec"]
    assert {"name": "payload-log", "persistentVolumeClaim": {"claimName": "logs"}} in pod["volumes"]
    assert {"name": "payload-log", "mountPath": "/var/payloads"} in pod["containers"][0]["volumeMounts"]


@pytest.mark.parametrize(
    ("stable", "weight", "most", "canary"),
    [
        (1, 10, 3, 1),
        (4, 20, 8, 1),
        (9, 10, 9, 1),
        (3, 50, 5, 2),
        (10, 25, 10, 3),
        (2, 0, 3, 0),
        (8, 100, 5, 5),
    ],
)
def test_canary_replicas_follow_its_share_of_stable_load(
    stable: int, weight: int, most: int, canary: int
) -> None:
    """ceil(stable * weight / 100), at least 1 while weighted, never above replicas.max; the old
    replica ratio gave a 10% canary next to one stable pod half of the traffic."""
    assert canary_replicas(stable, weight, most) == canary


CANARY = {"model": {"uri": "models:/churn/9"}, "analysis": {"steps": [10, 50]}}


def routes_of(children: list[dict[str, Any]]) -> Routes:
    config = by_kind(children)["ConfigMap"][0]
    return Routes.model_validate_json(config["data"][ROUTES_KEY])


def test_canary_track_its_service_and_the_routes(settings: OperatorSettings) -> None:
    md = spec(replicas={"min": 4, "max": 8}, canary=CANARY)
    owner = owner_of("ModelDeployment", "churn")
    children = render_serving(owner, md, settings, delivery=Delivery(weight=10, canary_replicas=1))
    kinds = by_kind(children)
    stable, canary = kinds["Deployment"]
    assert canary["metadata"]["name"] == "churn-canary" and canary["spec"]["replicas"] == 1
    assert env_of(canary)["KUBELOOP_SERVING_MODEL_URI"] == "models:/churn/9"
    assert env_of(canary)["KUBELOOP_SERVING_TRACK"] == "canary"
    assert "KUBELOOP_SERVING_ROUTES_FILE" not in env_of(canary), "the canary forwards nothing"
    assert canary["spec"]["selector"]["matchLabels"]["kubeloop.io/track"] == "canary"
    assert stable["spec"]["selector"]["matchLabels"]["kubeloop.io/track"] == "stable"
    assert "replicas" not in stable["spec"], "the HPA owns the stable track's replicas"
    services = {s["metadata"]["name"]: s["spec"]["selector"] for s in kinds["Service"]}
    assert services["churn"]["kubeloop.io/track"] == "stable", "clients reach stable pods only"
    assert services["churn-canary"]["kubeloop.io/track"] == "canary"
    routes = routes_of(children)
    assert routes.canary is not None and routes.canary.weight_percent == 10
    assert routes.canary.url == "http://churn-canary.team-a.svc.cluster.local:8080"
    assert routes.canary.grpc_target == "churn-canary.team-a.svc.cluster.local:8081"
    assert kinds["ConfigMap"][0]["metadata"]["name"] == "churn-routes"
    assert expected_replicas(md, Delivery(weight=10, canary_replicas=1)) == 5


def test_without_grpc_the_routes_name_no_grpc_target(settings: OperatorSettings) -> None:
    md = spec(canary=CANARY, grpc={"enabled": False})
    children = render_serving(
        owner_of("ModelDeployment", "churn"), md, settings, delivery=Delivery(weight=10)
    )
    canary = routes_of(children).canary
    assert canary is not None and canary.grpc_target is None
    services = {s["metadata"]["name"]: s["spec"]["ports"] for s in by_kind(children)["Service"]}
    assert [p["name"] for p in services["churn-canary"]] == ["http"]


def test_the_weight_changes_only_the_routes_never_the_stable_pods(settings: OperatorSettings) -> None:
    md, owner = spec(canary=CANARY), owner_of("ModelDeployment", "churn")
    before = render_serving(owner, md, settings, delivery=Delivery(weight=0, canary_replicas=1))
    after = render_serving(owner, md, settings, delivery=Delivery(weight=50, canary_replicas=1))
    changed = [(b["kind"], b["metadata"]["name"]) for b, a in zip(before, after, strict=True) if a != b]
    assert changed == [("ConfigMap", "churn-routes")]
    assert routes_of(before).canary.weight_percent == 0  # type: ignore[union-attr]
    without = render_serving(owner, spec(), settings)
    assert without[0] == before[0], "adding a canary does not restart stable either"
    assert routes_of(without).canary is None


def test_stable_pods_mount_the_routes_as_a_volume(settings: OperatorSettings) -> None:
    stable = render_serving(owner_of("ModelDeployment", "churn"), spec(), settings)[0]
    pod = stable["spec"]["template"]["spec"]
    assert {"name": "routes", "configMap": {"name": "churn-routes"}} in pod["volumes"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "routes")
    assert mount == {"name": "routes", "mountPath": ROUTES_DIR, "readOnly": True}, (
        "no subPath: updates propagate"
    )
    assert env_of(stable)["KUBELOOP_SERVING_ROUTES_FILE"] == ROUTES_FILE
    assert env_of(stable)["KUBELOOP_SERVING_TRACK"] == "stable"


def test_a_promotion_serves_the_canary_model_on_the_stable_track(settings: OperatorSettings) -> None:
    md = spec(model={"uri": "models:/churn/3"}, canary=CANARY)
    promoted = Track(md.canary.model, ResolvedModel(uri="models:/churn/9", version="9"))  # type: ignore[union-attr]
    children = render_serving(
        owner_of("ModelDeployment", "churn"), md, settings, delivery=Delivery(stable=promoted)
    )
    stable = by_kind(children)["Deployment"][0]
    assert env_of(stable)["KUBELOOP_SERVING_MODEL_URI"] == "models:/churn/9"
    assert env_of(stable)["KUBELOOP_SERVING_MODEL_VERSION"] == "9"


def test_service_selects_stable_pods_only(settings: OperatorSettings) -> None:
    md = spec(canary={"model": {"uri": "models:/churn/9"}, "trafficPercent": 50})
    kinds = by_kind(render_serving(owner_of("ModelDeployment"), md, settings))
    selector = kinds["Service"][0]["spec"]["selector"].items()
    stable, canary = kinds["Deployment"]
    assert set(selector) <= set(stable["spec"]["template"]["metadata"]["labels"].items())
    assert not set(selector) <= set(canary["spec"]["template"]["metadata"]["labels"].items())


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


def test_explain_becomes_server_settings_except_on_the_shadow(settings: OperatorSettings) -> None:
    explained = spec(
        explain={"backgroundUri": "s3://data/ref.parquet", "method": "lime", "budget": 500},
        shadow={"model": {"uri": "models:/churn/9"}, "percent": 10},
    )
    deployments = by_kind(render_serving(owner_of("ModelDeployment"), explained, settings))["Deployment"]
    stable, shadow = deployments[0], deployments[-1]
    env = env_of(stable)
    assert env["KUBELOOP_SERVING_EXPLAIN_ENABLED"] == "true"
    assert env["KUBELOOP_SERVING_EXPLAIN_METHOD"] == "lime"
    assert env["KUBELOOP_SERVING_EXPLAIN_BACKGROUND_URI"] == "s3://data/ref.parquet"
    assert env["KUBELOOP_SERVING_EXPLAIN_BACKGROUND_ROWS"] == "100"
    assert env["KUBELOOP_SERVING_EXPLAIN_BUDGET"] == "500"
    assert env_of(shadow)["KUBELOOP_SERVING_TRACK"] == "shadow"
    assert not any(name.startswith("KUBELOOP_SERVING_EXPLAIN") for name in env_of(shadow))
    off = spec(explain={"backgroundUri": "/ref.csv", "enabled": False})
    assert not any(
        "EXPLAIN" in name for name in env_of(render_serving(owner_of("ModelDeployment"), off, settings)[0])
    )


def test_separate_explainer_pods_serve_the_stable_model_alone(settings: OperatorSettings) -> None:
    explained = spec(explain={"backgroundUri": "/ref.csv", "separatePods": True, "replicas": 2})
    resolved = ResolvedModel(uri="models:/churn/7", version="7")
    kinds = by_kind(render_serving(owner_of("ModelDeployment"), explained, settings, resolved))
    stable, explainer = kinds["Deployment"]
    assert not any("EXPLAIN" in name for name in env_of(stable))
    env = env_of(explainer)
    assert explainer["metadata"]["name"].endswith("-explainer") and explainer["spec"]["replicas"] == 2
    assert env["KUBELOOP_SERVING_TRACK"] == "explainer" and env["KUBELOOP_SERVING_EXPLAIN_ENABLED"] == "true"
    assert env["KUBELOOP_SERVING_MODEL_URI"] == "models:/churn/7"
    assert "KUBELOOP_SERVING_ROUTES_FILE" not in env  # explainers never forward
    service = [s for s in kinds["Service"] if s["metadata"]["name"] == explainer["metadata"]["name"]]
    assert service[0]["spec"]["selector"]["kubeloop.io/track"] == "explainer"
    assert expected_replicas(explained) == explained.replicas.min + 2
    assert expected_replicas(spec(explain={"backgroundUri": "/ref.csv"})) == explained.replicas.min
