"""The shadow and the A/B arms: their Deployments and Services, and the routes the stable servers read."""

from __future__ import annotations

from typing import Any

import pytest

from kubeloop.api.deployment import ModelDeploymentSpec
from kubeloop.api.deployment_status import ResolvedModel
from kubeloop.contracts.routing import ROUTES_KEY, Routes
from kubeloop_operator.render.delivery import SideTracks, ab_weights
from kubeloop_operator.render.serving import expected_replicas, render_serving
from kubeloop_operator.settings import OperatorSettings
from kubeloop_operator.status.serving import ready_side_tracks, side_status
from tests.unit.operator.conftest import owner_of

pytestmark = pytest.mark.unit
SHADOW = {"model": {"uri": "models:/churn/9"}, "percent": 20, "queueSize": 50}
AB = {
    "header": "x-user-id",
    "variants": [
        {"name": "control", "weightPercent": 50},
        {"name": "forest", "model": {"uri": "s3://models/forest.onnx"}, "weightPercent": 30},
        {"name": "mlp", "model": {"uri": "s3://models/mlp.onnx"}, "weightPercent": 20},
    ],
}
OWNER = owner_of("ModelDeployment", "churn")
URL = "http://churn-{}.team-a.svc.cluster.local:8080"


def spec(**fields: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {"model": {"uri": "models:/churn@champion"}, "replicas": {"min": 2, "max": 5}, **fields}
    )


def named(children: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {c["metadata"]["name"]: c for c in children if c["kind"] == kind}


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def routes_of(children: list[dict[str, Any]]) -> Routes:
    return Routes.model_validate_json(named(children, "ConfigMap")["churn-routes"]["data"][ROUTES_KEY])


def test_a_shadow_is_its_own_track_mirrored_once_ready(settings: OperatorSettings) -> None:
    md = spec(shadow=SHADOW, payloadLogging={"sinkUri": "s3://payloads"})
    resolved = SideTracks({"shadow": ResolvedModel(uri="models:/churn/9", version="9")})
    children = render_serving(OWNER, md, settings, side=resolved)
    deployments, services = named(children, "Deployment"), named(children, "Service")
    assert set(deployments) == set(services) - {"churn-grpc"} == {"churn", "churn-shadow"}
    shadow = deployments["churn-shadow"]
    assert shadow["spec"]["replicas"] == 2, "replicas.min, no autoscaler"
    assert shadow["metadata"]["labels"]["kubeloop.io/track"] == "shadow"
    assert shadow["spec"]["selector"]["matchLabels"]["kubeloop.io/track"] == "shadow"
    env = env_of(shadow)
    assert env["KUBELOOP_SERVING_TRACK"] == "shadow"
    assert env["KUBELOOP_SERVING_MODEL_VERSION"] == "9"
    assert "KUBELOOP_SERVING_ROUTES_FILE" not in env, "only stable routes"
    assert "KUBELOOP_SERVING_PAYLOAD_LOG_URI" not in env, "stable logs the shadow's rows"
    assert "KUBELOOP_SERVING_PAYLOAD_LOG_URI" in env_of(deployments["churn"])
    assert services["churn-shadow"]["spec"]["selector"]["kubeloop.io/track"] == "shadow"
    assert services["churn"]["spec"]["selector"]["kubeloop.io/track"] == "stable"

    waiting = routes_of(children).shadow
    assert waiting is not None and waiting.percent == 0, "no ready replica: nothing mirrored"
    assert waiting.url == URL.format("shadow") and waiting.queue_size == 50
    ready = routes_of(render_serving(OWNER, md, settings, side=SideTracks(ready=frozenset({"shadow"}))))
    assert ready.shadow is not None and ready.shadow.percent == 20
    assert expected_replicas(md) == 4


def test_ab_arms_get_a_track_each_and_the_control_is_stable(settings: OperatorSettings) -> None:
    md = spec(abTest=AB)
    children = render_serving(OWNER, md, settings, side=SideTracks(ready=frozenset({"forest", "mlp"})))
    deployments, services = named(children, "Deployment"), named(children, "Service")
    assert set(deployments) == set(services) - {"churn-grpc"} == {"churn", "churn-forest", "churn-mlp"}
    for arm in ("forest", "mlp"):
        assert env_of(deployments[f"churn-{arm}"])["KUBELOOP_SERVING_TRACK"] == arm
        assert deployments[f"churn-{arm}"]["spec"]["replicas"] == 2
        assert services[f"churn-{arm}"]["spec"]["selector"]["kubeloop.io/track"] == arm
    assert env_of(deployments["churn-forest"])["KUBELOOP_SERVING_MODEL_URI"] == "s3://models/forest.onnx"
    ab = routes_of(children).ab
    assert ab is not None and ab.header == "x-user-id"
    assert [(v.name, v.url, v.weight_percent) for v in ab.variants] == [
        ("control", None, 50),
        ("forest", URL.format("forest"), 30),
        ("mlp", URL.format("mlp"), 20),
    ]
    assert expected_replicas(md) == 6


def test_an_arm_not_ready_lends_its_weight_to_the_control_arm(settings: OperatorSettings) -> None:
    md = spec(abTest=AB)
    ready = frozenset({"mlp"})
    ab = routes_of(render_serving(OWNER, md, settings, side=SideTracks(ready=ready))).ab
    assert ab is not None
    assert {v.name: v.weight_percent for v in ab.variants} == {"control": 80, "forest": 0, "mlp": 20}
    assert ab_weights(md.ab_test, frozenset()) == {"control": 100, "forest": 0, "mlp": 0}  # type: ignore[arg-type]
    deployments = {"churn": {"status": {"readyReplicas": 3}}, "churn-mlp": {"status": {"readyReplicas": 1}}}
    assert ready_side_tracks(OWNER, md, deployments) == ready
    _, arms = side_status(OWNER, md, deployments, SideTracks(ready=ready), None)
    assert arms is not None
    by_name = {a.name: a for a in arms}
    assert [a.name for a in arms] == ["control", "forest", "mlp"]
    assert (by_name["control"].percent, by_name["control"].ready_replicas) == (80, 3)
    assert "+30%" in by_name["control"].message
    assert (by_name["forest"].routed, by_name["forest"].percent) == (False, 0)
    assert by_name["forest"].message == "no ready replica yet: its 30% goes to control"
    assert (by_name["mlp"].routed, by_name["mlp"].percent, by_name["mlp"].ready_replicas) == (True, 20, 1)


def test_shadow_and_ab_together_and_what_removing_them_leaves(settings: OperatorSettings) -> None:
    both = render_serving(OWNER, spec(shadow=SHADOW, abTest=AB), settings)
    assert set(named(both, "Deployment")) == {"churn", "churn-shadow", "churn-forest", "churn-mlp"}
    plain = render_serving(OWNER, spec(), settings)
    assert set(named(plain, "Deployment")) == set(named(plain, "Service")) - {"churn-grpc"} == {"churn"}
    assert routes_of(plain).shadow is None and routes_of(plain).ab is None
    assert named(both, "Deployment")["churn"] == named(plain, "Deployment")["churn"], (
        "adding a shadow or an A/B test touches the routes only, never the stable pods"
    )


def test_long_names_stay_dns_labels(settings: OperatorSettings) -> None:
    owner = owner_of("ModelDeployment", "m" * 60)
    arm = "v" * 30
    md = spec(abTest={"header": "h", "variants": [{"name": "control", "weightPercent": 50},
              {"name": arm, "model": {"uri": "/m.onnx"}, "weightPercent": 50}]})  # fmt: skip
    children = render_serving(owner, md, settings)
    assert all(len(c["metadata"]["name"]) <= 63 for c in children)
    assert len(named(children, "Deployment")) == len(named(children, "Service")) - 1 == 2  # + `-grpc`
