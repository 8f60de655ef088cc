"""Every OIP v2 REST endpoint against a real uvicorn server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import orjson
import pytest

from kubeloop_serving.settings import ServingSettings
from tests.unit.serving.conftest import (
    ONNX_TYPES,
    RunningServer,
    identity_model,
    image_model,
    serve_in_thread,
    tabular_reference,
)

pytestmark = pytest.mark.unit

ROWS = [[1.0, 2.0, 3.0, 4.0], [-1.5, 0.25, 8.0, 0.0], [3.0, 3.0, 3.0, 3.0]]


def tabular_request(rows: list[list[float]] = ROWS, **extra: object) -> dict[str, object]:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [len(rows), 4], "data": rows}], **extra}


def test_health(tabular_server: RunningServer) -> None:
    assert tabular_server.client.get("/v2/health/live").json() == {"live": True}
    assert tabular_server.client.get("/v2/health/ready").json() == {"ready": True}


def test_server_metadata(tabular_server: RunningServer) -> None:
    metadata = tabular_server.client.get("/v2").json()
    assert metadata["name"] == "kubeloop"
    assert "binary_tensor_data" in metadata["extensions"]
    assert metadata["version"]


def test_model_metadata_reads_the_graph(tabular_server: RunningServer) -> None:
    expected = {
        "name": "tabular",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [
            {"name": "scores", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "label", "datatype": "INT64", "shape": [-1]},
        ],
    }
    assert tabular_server.client.get("/v2/models/tabular").json() == expected
    assert tabular_server.client.get("/v2/models/tabular/versions/1").json() == expected


def test_model_ready(tabular_server: RunningServer) -> None:
    assert tabular_server.client.get("/v2/models/tabular/ready").json() == {"name": "tabular", "ready": True}
    assert tabular_server.client.get("/v2/models/tabular/versions/1/ready").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/other",
        "/v2/models/other/ready",
        "/v2/models/tabular/versions/2",
        "/v2/models/tabular/versions/2/ready",
    ],
)
def test_unknown_models_and_versions_are_404(tabular_server: RunningServer, path: str) -> None:
    response = tabular_server.client.get(path)
    assert response.status_code == 404
    assert set(response.json()) == {"error"}


@pytest.mark.parametrize("path", ["/v2/models/other/infer", "/v2/models/tabular/versions/9/infer"])
def test_infer_on_unknown_model_or_version_is_404(tabular_server: RunningServer, path: str) -> None:
    response = tabular_server.client.post(path, json=tabular_request())
    assert response.status_code == 404
    assert "error" in response.json()


def test_unknown_route_uses_the_error_shape(tabular_server: RunningServer) -> None:
    response = tabular_server.client.get("/v3/nothing")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found"}


def test_infer_matches_onnxruntime_called_directly(tabular_server: RunningServer, tabular_path: Path) -> None:
    response = tabular_server.infer("tabular", tabular_request(id="req-42"))
    assert response.status_code == 200
    document = response.json()
    assert (document["model_name"], document["model_version"], document["id"]) == ("tabular", "1", "req-42")
    scores, label = document["outputs"]
    direct_scores, direct_label = ort.InferenceSession(str(tabular_path)).run(
        None, {"x": np.array(ROWS, np.float32)}
    )
    assert scores["shape"] == [3, 3] and scores["datatype"] == "FP32"
    np.testing.assert_array_equal(np.array(scores["data"], np.float32).reshape(3, 3), direct_scores)
    assert label == {"name": "label", "datatype": "INT64", "shape": [3], "data": direct_label.tolist()}
    np.testing.assert_allclose(direct_scores, tabular_reference(np.array(ROWS))[0], rtol=1e-6)


def test_flat_data_and_versioned_infer(tabular_server: RunningServer) -> None:
    flat = [value for row in ROWS for value in row]
    nested = tabular_server.infer("tabular", tabular_request()).json()
    response = tabular_server.client.post(
        "/v2/models/tabular/versions/1/infer",
        json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [3, 4], "data": flat}]},
    )
    assert response.status_code == 200
    assert response.json()["outputs"] == nested["outputs"]
    assert len(response.json()["id"]) == 32, "an id is generated for a request that has none"


def test_output_selection(tabular_server: RunningServer) -> None:
    document = tabular_server.infer("tabular", tabular_request(outputs=[{"name": "label"}])).json()
    assert [output["name"] for output in document["outputs"]] == ["label"]


def test_parameters_are_accepted(tabular_server: RunningServer) -> None:
    response = tabular_server.infer("tabular", tabular_request(parameters={"content_type": "np", "x": 1}))
    assert response.status_code == 200


def test_binary_tensors_both_ways(tabular_server: RunningServer) -> None:
    x = np.array(ROWS, np.float32)
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [3, 4],
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "scores", "parameters": {"binary_data": True}}, {"name": "label"}],
        }
    )
    response = tabular_server.client.post(
        "/v2/models/tabular/infer",
        content=header + x.tobytes(),
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert response.status_code == 200
    length = int(response.headers["Inference-Header-Content-Length"])
    document = orjson.loads(response.content[:length])
    scores, label = document["outputs"]
    assert scores["parameters"]["binary_data_size"] == 36
    binary_scores = np.frombuffer(response.content[length:], "<f4").reshape(3, 3)
    np.testing.assert_array_equal(binary_scores, tabular_reference(x)[0])
    assert label["data"] == tabular_reference(x)[1].tolist()


def test_binary_data_output_for_every_output(tabular_server: RunningServer) -> None:
    response = tabular_server.infer("tabular", tabular_request(parameters={"binary_data_output": True}))
    length = int(response.headers["Inference-Header-Content-Length"])
    outputs = orjson.loads(response.content[:length])["outputs"]
    assert [o["parameters"]["binary_data_size"] for o in outputs] == [36, 24]
    assert len(response.content) == length + 60


VALUES: dict[str, list[list[Any]]] = {
    "BOOL": [[True, False], [False, True]],
    "UINT8": [[0, 255], [1, 2]],
    "UINT16": [[0, 65535], [1, 2]],
    "UINT32": [[0, 2**32 - 1], [1, 2]],
    "UINT64": [[0, 2**64 - 1], [1, 2]],
    "INT8": [[-128, 127], [1, 2]],
    "INT16": [[-32768, 32767], [1, 2]],
    "INT32": [[-(2**31), 2**31 - 1], [1, 2]],
    "INT64": [[-(2**63), 2**63 - 1], [1, 2]],
    "FP16": [[0.5, -65504.0], [1.0, 2.0]],
    "FP32": [[0.1, 3.4e38], [1.0, 2.0]],
    "FP64": [[0.1, 1e308], [1.0, 2.0]],
    "BYTES": [["kube", "lööp"], ["", "x"]],
}


def test_every_datatype_round_trips_through_json(tmp_path: Path) -> None:
    with serve_in_thread(identity_model(tmp_path / "identity.onnx"), model_name="identity") as server:
        inputs = [
            {"name": f"in_{datatype}", "datatype": datatype, "shape": [2, 2], "data": VALUES[datatype]}
            for datatype in ONNX_TYPES
        ]
        response = server.infer("identity", {"inputs": inputs})
        assert response.status_code == 200, response.text
        outputs = {output["name"]: output for output in response.json()["outputs"]}
        for datatype, values in VALUES.items():
            output = outputs[f"out_{datatype}"]
            assert (output["datatype"], output["shape"]) == (datatype, [2, 2])
            expected = [v for row in values for v in row]
            if datatype in ("FP16", "FP32"):  # JSON carries the shortest decimal of the narrow float
                dtype = np.float16 if datatype == "FP16" else np.float32
                np.testing.assert_array_equal(np.array(output["data"], dtype), np.array(expected, dtype))
            else:
                assert output["data"] == expected, datatype


def test_rank_four_inputs(tmp_path: Path) -> None:
    with serve_in_thread(image_model(tmp_path / "image.onnx"), model_name="image") as server:
        image = np.arange(2 * 2 * 3 * 3, dtype=np.float32).reshape(2, 2, 3, 3)
        request = {
            "inputs": [{"name": "image", "datatype": "FP32", "shape": [2, 2, 3, 3], "data": image.tolist()}]
        }
        pooled = server.infer("image", request).json()["outputs"][0]
        np.testing.assert_allclose(np.array(pooled["data"]).reshape(2, 2), image.mean(axis=(2, 3)))


def test_sklearn_model_matches_onnxruntime(tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(7)
    features = rng.normal(size=(200, 5)).astype(np.float32)
    target = (features @ rng.normal(size=5) > 0).astype(np.int64)
    onnx_model = to_onnx(
        LogisticRegression().fit(features, target), features[:1], options={"zipmap": False}, target_opset=17
    )
    path = tmp_path / "logreg.onnx"
    path.write_bytes(onnx_model.SerializeToString())
    sample = features[:16]
    direct = ort.InferenceSession(str(path)).run(None, {"X": sample})
    with serve_in_thread(path) as server:
        request = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [16, 5], "data": sample.tolist()}]}
        outputs = server.infer("logreg", request).json()["outputs"]
    assert outputs[0]["data"] == direct[0].tolist()
    np.testing.assert_array_equal(np.array(outputs[1]["data"], np.float32).reshape(16, 2), direct[1])


def test_fixed_shape_model_serves_without_batching(tmp_path: Path) -> None:
    from tests.unit.serving.conftest import tabular_model

    path = tabular_model(tmp_path / "fixed.onnx", batch=1)
    with serve_in_thread(path, model_name="fixed") as server:
        assert server.client.get("/v2/models/fixed").json()["inputs"][0]["shape"] == [1, 4]
        ok = server.infer("fixed", tabular_request(ROWS[:1]))
        assert ok.status_code == 200
        wrong = server.infer("fixed", tabular_request(ROWS[:2]))
        assert wrong.status_code == 400
        assert "shape [1, 4]" in wrong.json()["error"]


def test_metrics_endpoint_names(tabular_server: RunningServer) -> None:
    tabular_server.infer("tabular", tabular_request())
    text = tabular_server.client.get("/metrics").text
    for name in (
        "kubeloop_serving_requests_total",
        "kubeloop_serving_request_duration_seconds_bucket",
        "kubeloop_serving_batch_size_bucket",
        "kubeloop_serving_batch_limit_rows",
        "kubeloop_serving_inflight_requests",
        "kubeloop_serving_model_load_seconds",
        "kubeloop_serving_model_info",
        "kubeloop_serving_payload_log_rows_total",
        "kubeloop_serving_payload_log_dropped_total",
    ):
        assert name in text, name
    assert (
        tabular_server.metric("kubeloop_serving_model_info", model="tabular", version="1", uri_scheme="file")
        == 1
    )
    assert (
        tabular_server.metric("kubeloop_serving_requests_total", model="tabular", version="1", code="200")
        >= 1
    )
    limit = tabular_server.metric("kubeloop_serving_batch_limit_rows", model="tabular", version="1")
    assert limit == ServingSettings.model_fields["max_batch_size"].default, (
        "a model this small is never held below the maximum"
    )


def test_http_errors_are_json(tabular_server: RunningServer) -> None:
    response = tabular_server.client.get("/v2/models/tabular/infer")
    assert response.status_code == 405
    assert "error" in response.json()
    assert isinstance(tabular_server.client, httpx.Client)
