from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kubeloop_serving.cli import settings_from
from kubeloop_serving.settings import ServingSettings, model_name_from_uri

pytestmark = pytest.mark.unit


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBELOOP_SERVING_MODEL_URI", "s3://models/fraud/model.onnx")
    settings = ServingSettings()
    assert settings.served_model_name == "fraud"
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)
    assert (settings.max_batch_size, settings.max_batch_wait_ms) == (32, 2.0)
    assert settings.intra_op_threads == 0
    assert settings.payload_log_uri is None
    assert not settings.payload_logging_enabled
    assert settings.model_version is None


def test_every_field_is_documented() -> None:
    undocumented = [name for name, field in ServingSettings.model_fields.items() if not field.description]
    assert undocumented == []


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "KUBELOOP_SERVING_MODEL_URI": "/m/net.onnx",
        "KUBELOOP_SERVING_MODEL_NAME": "churn",
        "KUBELOOP_SERVING_MODEL_VERSION": "7",
        "KUBELOOP_SERVING_MODEL_SHA256": "a" * 64,
        "KUBELOOP_SERVING_PORT": "9000",
        "KUBELOOP_SERVING_MAX_BATCH_SIZE": "1",
        "KUBELOOP_SERVING_MAX_BATCH_WAIT_MS": "0.5",
        "KUBELOOP_SERVING_INTRA_OP_THREADS": "3",
        "KUBELOOP_SERVING_PAYLOAD_LOG_URI": "s3://logs",
        "KUBELOOP_SERVING_PAYLOAD_LOG_SAMPLE_RATE": "0.25",
        "KUBELOOP_SERVING_PAYLOAD_LOG_QUEUE_SIZE": "5",
        "KUBELOOP_SERVING_PAYLOAD_LOG_FLUSH_ROWS": "6",
        "KUBELOOP_SERVING_PAYLOAD_LOG_FLUSH_SECONDS": "7",
        "KUBELOOP_SERVING_MAX_REQUEST_BYTES": "4096",
        "KUBELOOP_SERVING_DRAIN_SECONDS": "9",
        "KUBELOOP_SERVING_LOG_LEVEL": "DEBUG",
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = ServingSettings()
    assert settings.served_model_name == "churn"
    assert settings.model_version == "7"
    assert settings.model_sha256 == "a" * 64
    assert settings.port == 9000
    assert settings.max_batch_size == 1
    assert settings.max_batch_wait_ms == 0.5
    assert settings.intra_op_threads == 3
    assert settings.payload_log_uri == "s3://logs"
    assert settings.payload_log_sample_rate == 0.25
    assert (settings.payload_log_queue_size, settings.payload_log_flush_rows) == (5, 6)
    assert settings.payload_log_flush_seconds == 7
    assert settings.max_request_bytes == 4096
    assert settings.drain_seconds == 9
    assert settings.log_level == "debug"
    assert settings.mlflow_tracking_uri == "http://mlflow:5000"
    assert settings.payload_logging_enabled


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"KUBELOOP_SERVING_MODEL_URI": "/m.onnx", "KUBELOOP_SERVING_MODEL_SHA256": "not-hex"},
        {"KUBELOOP_SERVING_MODEL_URI": "/m.onnx", "KUBELOOP_SERVING_PAYLOAD_LOG_SAMPLE_RATE": "1.5"},
        {"KUBELOOP_SERVING_MODEL_URI": "/m.onnx", "KUBELOOP_SERVING_MAX_BATCH_SIZE": "0"},
    ],
)
def test_invalid_settings_are_refused(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    monkeypatch.delenv("KUBELOOP_SERVING_MODEL_URI", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        ServingSettings()


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("models:/fraud@champion", "fraud"),
        ("models:/fraud/3", "fraud"),
        ("s3://bucket/iris/model.onnx", "iris"),
        ("https://example.com/zoo/resnet18.onnx", "resnet18"),
        ("file:///models/churn v2.onnx", "churn-v2"),
        ("/model.onnx", "model"),
    ],
)
def test_model_name_from_uri(uri: str, name: str) -> None:
    assert model_name_from_uri(uri) == name


def test_cli_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBELOOP_SERVING_MODEL_URI", "/from/env.onnx")
    monkeypatch.setenv("KUBELOOP_SERVING_PORT", "9000")
    settings = settings_from(["--model-uri", "/from/flag.onnx", "--max-batch-size", "4", "--grpc-port", "0"])
    assert settings.model_uri == "/from/flag.onnx"
    assert settings.max_batch_size == 4
    assert settings.port == 9000
    assert settings.grpc_port == 0


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).parents[3] / "serving" / "README.md").read_text()
    for name in ServingSettings.model_fields:
        if name != "mlflow_tracking_uri":
            assert f"`{name.upper()}`" in readme, name
