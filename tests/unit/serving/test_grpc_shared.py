"""gRPC and REST share one data plane (batches, metrics, payload log); tritonclient works unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from kubeloop_serving.oip_grpc import grpc_predict_v2_pb2 as pb
from tests.fixtures.serve import ServerProcess
from tests.unit.serving.conftest import (
    GATHER_TABLE,
    TABULAR_FEATURES,
    logged_rows,
    post_all_at_once,
    tabular_reference,
)
from tests.unit.serving.grpc_helpers import grpc_server, infer_request, outputs_of

pytestmark = pytest.mark.unit

CONCURRENT = 16
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def test_tritonclient_works_unchanged(
    server_process: Callable[..., ServerProcess], tabular_path: Path
) -> None:
    with grpc_server(server_process, model_uri=str(tabular_path), model_name="tab") as server:
        client = triton.InferenceServerClient(server.address)
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("tab")
        metadata = client.get_model_metadata("tab", as_json=True)
        assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["-1", "4"]}]
        x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
        given = triton.InferInput("x", [3, 4], "FP32")
        given.set_data_from_numpy(x)
        wanted = [triton.InferRequestedOutput("scores"), triton.InferRequestedOutput("label")]
        result = client.infer("tab", [given], outputs=wanted, request_id="triton-1")
        scores, label = tabular_reference(x)
        np.testing.assert_allclose(result.as_numpy("scores"), scores, rtol=1e-6)
        np.testing.assert_array_equal(result.as_numpy("label"), label)
        assert result.get_response().id == "triton-1"
        with pytest.raises(InferenceServerException) as refused:
            client.infer("other", [given])
        assert refused.value.status() == "StatusCode.NOT_FOUND"
        assert "model 'other' is not served here" in refused.value.message()
        client.close()


def gather_inputs(row: int) -> dict[str, tuple[str, np.ndarray]]:
    return {
        "x": ("FP32", np.full((1, 4), row, np.float32)),
        "idx": ("INT64", np.array([row % 10])),
    }


def rest_gather(row: int) -> dict[str, object]:
    return {
        "id": f"rest-{row}",
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [row] * 4},
            {"name": "idx", "datatype": "INT64", "shape": [1], "data": [row % 10]},
        ],
    }


def test_grpc_and_rest_share_the_batcher_and_the_metrics(
    server_process: Callable[..., ServerProcess], slow_gather_path: Path
) -> None:
    with grpc_server(
        server_process, model_uri=str(slow_gather_path), model_name="gather", max_batch_size="32"
    ) as server:
        batch = {"model": "gather", "version": "1"}
        before_count = server.metric("kubeloop_serving_batch_size_count", **batch)
        calls = [
            server.stub.ModelInfer.future(
                infer_request("gather", gather_inputs(row), raw=True, id=f"grpc-{row}")
            )
            for row in range(CONCURRENT)
        ]
        rest = post_all_at_once(
            server.process.url, "/v2/models/gather/infer", [rest_gather(row) for row in range(CONCURRENT)]
        )
        answers = [call.result(timeout=120) for call in calls]
        count = server.metric("kubeloop_serving_batch_size_count", **batch) - before_count
        rows = server.metric("kubeloop_serving_batch_size_sum", **batch)
        served = server.metric("kubeloop_serving_requests_total", model="gather", code="200")
        inflight = server.metric("kubeloop_serving_inflight_requests", model="gather")
    for row, answer in enumerate(answers):
        assert answer.id == f"grpc-{row}"
        np.testing.assert_array_equal(outputs_of(answer)["y"], GATHER_TABLE[[row % 10]] + row)
    for row, response in enumerate(rest):
        assert response.status == 200, response.body
        assert response.json()["id"] == f"rest-{row}"
    assert rows == 2 * CONCURRENT  # one histogram: every gRPC and REST row went through the one batcher
    assert served == 2 * CONCURRENT
    assert count < 2 * CONCURRENT, "no two requests were merged"
    assert inflight == 0


def test_grpc_requests_are_payload_logged_with_ids_and_attributes(
    server_process: Callable[..., ServerProcess], tabular_path: Path, tmp_path: Path
) -> None:
    sink = tmp_path / "payloads"
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    attributes = json.dumps({"sex": ["f", "m", None]})
    with grpc_server(
        server_process,
        model_uri=str(tabular_path),
        model_name="churn",
        payload_log_uri=str(sink),
        payload_log_flush_seconds="60",
    ) as server:
        parameters = {"attributes": pb.InferParameter(string_param=attributes)}
        server.stub.ModelInfer(
            infer_request("churn", {"x": ("FP32", x)}, raw=False, id="g-1", parameters=parameters)
        )
        server.stub.ModelInfer(
            infer_request("churn", {"x": ("FP32", x[:1])}, raw=True), metadata=[("x-request-id", "g-2")]
        )
        bad = {"attributes": pb.InferParameter(string_param="{not json")}
        code, message = server.call_code(
            server.stub.ModelInfer, infer_request("churn", {"x": ("FP32", x)}, raw=True, parameters=bad)
        )
        assert server.process.terminate() == 0  # the drain writes the log
    assert (code, message) == (INVALID, "parameters.attributes must be JSON text (a string_param)")
    table = logged_rows(str(sink), "churn")
    assert table.column("_request_id").to_pylist() == ["g-1", "g-1", "g-1", "g-2"]
    assert table.column("_row").to_pylist() == [0, 1, 2, 0]
    assert table.column("_attribute.sex").to_pylist() == ["f", "m", None, None]
    features = np.column_stack([table.column(name).to_numpy() for name in TABULAR_FEATURES])
    np.testing.assert_array_equal(features, np.concatenate([x, x[:1]]))
    scores, _ = tabular_reference(np.concatenate([x, x[:1]]))
    logged = np.column_stack([table.column(f"_output.scores.{j}").to_numpy() for j in range(3)])
    np.testing.assert_allclose(logged, scores, rtol=1e-6)
