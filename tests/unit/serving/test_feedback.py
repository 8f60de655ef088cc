"""Ground truth through POST /v2/models/{name}/feedback, read back as the monitor reads labels."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from kubeloop.api.deployment import ModelDeploymentSpec
from kubeloop.api.drift import DriftCheckConfig
from kubeloop_drift.payload_log import payload_window
from kubeloop_drift.performance.check import check_performance
from kubeloop_drift.performance.labels import read_labels
from kubeloop_operator.render.common import Owner
from kubeloop_operator.render.serving import server_env
from kubeloop_operator.settings import OperatorSettings
from kubeloop_serving.errors import InvalidRequestError
from kubeloop_serving.feedback import LabelSink, feedback_table
from tests.unit.serving.conftest import RunningServer, serve_in_thread

pytestmark = pytest.mark.unit


def test_posted_labels_are_written_and_read_back(tmp_path: Path, tabular_path: Path) -> None:
    sink = tmp_path / "labels"
    with serve_in_thread(tabular_path, model_name="churn", labels_uri=str(sink)) as server:
        first = server.client.post(
            "/v2/models/churn/feedback",
            json={"request_ids": ["a", "b"], "labels": [1, 0], "timestamp": "2026-11-30T12:00:00+00:00"},
        )
        second = server.client.post(
            "/v2/models/churn/feedback", json={"request_ids": ["b"], "labels": [1], "rows": [2]}
        )
        assert (first.status_code, first.json()) == (200, {"accepted": 2})
        assert second.json() == {"accepted": 1}
        assert server.metric("kubeloop_serving_feedback_labels_total", model="churn") == 3
    labels = read_labels(str(sink / "churn"))
    keyed = {(r, row): (label, stamp) for r, row, label, stamp in labels.records()}
    assert keyed[("a", 0)] == (1.0, datetime(2026, 11, 30, 12, tzinfo=UTC).timestamp() * 1000)
    assert keyed[("b", 0)][0] == 0.0
    assert keyed[("b", 2)][0] == 1.0


def test_feedback_without_a_sink_or_for_another_model(tabular_server: RunningServer) -> None:
    body = {"request_ids": ["a"], "labels": [1]}
    disabled = tabular_server.client.post("/v2/models/tabular/feedback", json=body)
    assert disabled.status_code == 404 and "LABELS_URI" in disabled.json()["error"]
    other = tabular_server.client.post("/v2/models/other/feedback", json=body)
    assert other.status_code == 404 and "'other' is not served here" in other.json()["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1]", "feedback must be a JSON object"),
        (b'{"request_ids": ["a"], "labels": [1, 2]}', "1 request_ids but 2 labels"),
        (b'{"request_ids": [], "labels": []}', "request_ids must not be empty"),
        (b'{"request_ids": ["a", "b"], "labels": [1, "x"]}', "all numbers or all strings"),
        (b'{"request_ids": ["a"], "labels": [1], "rows": [-1]}', "rows must be non-negative"),
        (b'{"request_ids": ["a"], "labels": [1], "timestamp": "yesterday"}', "timestamp must be"),
        (b'{"request_ids": [3], "labels": [1]}', "request_ids must be non-empty strings"),
    ],
)
def test_bad_feedback_is_refused_naming_the_problem(body: bytes, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        feedback_table(body, 0)


def test_bad_feedback_over_http_is_400(tmp_path: Path, tabular_path: Path) -> None:
    with serve_in_thread(
        tabular_path, model_name="churn", labels_uri=str(tmp_path), max_request_bytes=2048
    ) as server:
        response = server.client.post("/v2/models/churn/feedback", content=b'{"request_ids": ["a"]}')
        big = {"request_ids": ["a"] * 1000, "labels": [1] * 1000}
        too_big = server.client.post("/v2/models/churn/feedback", json=big)
    assert response.status_code == 400 and response.json() == {"error": "labels must be a list"}
    assert too_big.status_code == 400 and "exceeds the limit of 2048" in too_big.json()["error"]
    assert not list(tmp_path.rglob("*.parquet"))


def test_labels_posted_to_an_operator_configured_server_are_where_the_monitor_looks(
    tmp_path: Path, tabular_path: Path
) -> None:
    """Operator -> server env (LABELS_URI) -> feedback -> the drift check's default label source."""
    sink = str(tmp_path / "payloads")
    spec = ModelDeploymentSpec.model_validate(
        {"model": {"uri": str(tabular_path)}, "payloadLogging": {"sinkUri": sink}}
    )
    owner = Owner("ModelDeployment", "kubeloop.io/v1alpha1", "churn", "ns", "uid")
    env = server_env(owner, spec, spec.model, None, OperatorSettings())
    settings = {
        key: env[f"KUBELOOP_SERVING_{key.upper()}"] for key in ("labels_uri", "payload_log_uri", "model_name")
    }
    rows = np.ones((2, 4), np.float32).tolist()
    request = {"id": "q1", "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": rows}]}
    with serve_in_thread(tabular_path, **settings) as server:
        assert server.infer("churn", request).status_code == 200
        body = {"request_ids": ["q1", "q1"], "rows": [0, 1], "labels": [1, 2]}
        assert server.client.post("/v2/models/churn/feedback", json=body).json() == {"accepted": 2}
    config = DriftCheckConfig.model_validate({"performance": {"task": "multiclass", "maturity": "0"}})
    assert config.performance is not None
    result = check_performance(payload_window(sink, "churn", duration="1h"), config.performance)
    assert (result.matured, result.labelled, result.label_coverage) == (2, 2, 1.0)
    assert list((tmp_path / "payloads" / "churn").rglob("*.parquet")), "the predictions were logged"
    assert pq.read_table(next((tmp_path / "payloads" / "_labels" / "churn").rglob("*.parquet"))).num_rows == 2


def test_feedback_into_object_storage_is_read_back_from_it(s3: Any) -> None:
    s3.mkdir("labels")
    sink = LabelSink("s3://labels/prod", "churn")
    body = b'{"request_ids": ["a", "b"], "labels": ["yes", "no"], "timestamp": 1700000000000}'
    assert asyncio.run(sink.append(body)) == 2
    read = read_labels("s3://labels/prod/churn")
    assert sorted(read.records()) == [("a", 0, "yes", 1.7e12), ("b", 0, "no", 1.7e12)]
