"""Operator -> server: the environment the operator renders is what `kubeloop serve` reads."""

from __future__ import annotations

import dataclasses

import pytest

from kubeloop.api.deployment import ModelDeploymentSpec
from kubeloop.api.deployment_status import ResolvedModel
from kubeloop.contracts.routing import ROUTES_FILE, Variant
from kubeloop.contracts.serving_env import ENV_PREFIX, ServerEnv, env_name
from kubeloop_operator.render.common import Owner
from kubeloop_operator.render.serving import render_serving
from kubeloop_operator.settings import OperatorSettings
from kubeloop_serving.settings import ServingSettings

pytestmark = pytest.mark.unit
SHA = "a" * 64


def test_every_variable_the_operator_sets_is_a_server_setting() -> None:
    names = {field.name for field in dataclasses.fields(ServerEnv)}
    assert names <= set(ServingSettings.model_fields)
    assert ServingSettings.model_config.get("env_prefix") == ENV_PREFIX


def test_rendered_environment_parses_into_the_server_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ModelDeploymentSpec.model_validate(
        {
            "model": {"uri": "models:/churn@champion", "sha256": SHA},
            "batching": {"maxBatchSize": 64, "maxWaitMs": 3.5, "maxRunMs": 40},
            "payloadLogging": {"sinkUri": "s3://payloads", "sampleRate": 0.25},
        }
    )
    owner = Owner("ModelDeployment", "kubeloop.io/v1alpha1", "churn-prod", "team-a", "uid")
    resolved = ResolvedModel(uri="models:/churn/7", version="7")
    deployment = render_serving(owner, spec, OperatorSettings(), resolved)[0]
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    names = {env_name(field.name) for field in dataclasses.fields(ServerEnv)}
    for variable in env:
        if variable["name"] in names:
            monkeypatch.setenv(variable["name"], variable["value"])
    settings = ServingSettings()
    assert settings.model_uri == "models:/churn/7" and settings.model_version == "7"
    assert settings.served_model_name == "churn-prod" and settings.model_sha256 == SHA
    assert (settings.max_batch_size, settings.max_batch_wait_ms, settings.max_batch_run_ms) == (64, 3.5, 40)
    assert (settings.payload_log_uri, settings.payload_log_sample_rate) == ("s3://payloads", 0.25)
    assert settings.mlflow_tracking_uri == OperatorSettings().mlflow_tracking_uri
    assert settings.port == int(
        deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    )


def test_routing_variables_parse_into_the_server_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = ServerEnv(
        model_uri="models:/churn/7",
        model_name="churn-prod",
        port=8080,
        max_batch_size=32,
        max_batch_wait_ms=2.0,
        routes_file=ROUTES_FILE,
        track="canary",
    ).to_env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = ServingSettings()
    assert (settings.routes_file, settings.track) == (ROUTES_FILE, "canary")
    monkeypatch.delenv(env_name("routes_file"))
    monkeypatch.delenv(env_name("track"))
    assert (ServingSettings().routes_file, ServingSettings().track) == (None, "stable")


@pytest.mark.parametrize("track", ["stable", "canary", "shadow", "variant-b"])
def test_every_track_the_routes_can_name_is_a_valid_setting(track: str) -> None:
    assert ServingSettings(model_uri="/m.onnx", track=track).track == track
    Variant(name=track, weight_percent=50)


def test_explain_variables_parse_into_the_server_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ModelDeploymentSpec.model_validate(
        {
            "model": {"uri": "s3://models/churn.onnx"},
            "explain": {
                "backgroundUri": "s3://data/ref/",
                "method": "tree",
                "backgroundRows": 50,
                "budget": 700,
            },
        }
    )
    owner = Owner("ModelDeployment", "kubeloop.io/v1alpha1", "churn-prod", "team-a", "uid")
    deployment = render_serving(owner, spec, OperatorSettings())[0]
    for variable in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "value" in variable:
            monkeypatch.setenv(variable["name"], variable["value"])
    settings = ServingSettings()
    assert settings.explain_enabled and settings.explain_method == "tree"
    assert settings.explain_background_uri == "s3://data/ref/"
    assert (settings.explain_background_rows, settings.explain_budget) == (50, 700)
