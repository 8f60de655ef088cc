"""Every kind of bad request gets a 4xx with {"error": ...} and leaves the server healthy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.unit.serving.conftest import RunningServer, serve_in_thread

pytestmark = pytest.mark.unit

LIMIT = 4096
GOOD = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


@pytest.fixture(scope="module")
def server(tabular_path: Path) -> Iterator[RunningServer]:
    with serve_in_thread(tabular_path, model_name="tabular", max_request_bytes=LIMIT) as running:
        yield running


def x(**changes: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4], **changes}]}


BAD_JSON_REQUESTS = {
    "wrong input name": (
        {"inputs": [{"name": "z", "datatype": "FP32", "shape": [1, 4], "data": [1] * 4}]},
        "'z'",
    ),
    "wrong datatype": (x(datatype="FP64"), "must be FP32"),
    "wrong shape": (x(shape=[2, 2]), "must have shape"),
    "wrong rank": (x(shape=[4]), "must have shape"),
    "too few elements": (x(data=[1, 2, 3]), "has 3 elements"),
    "too many elements": (x(data=[1, 2, 3, 4, 5]), "has 5 elements"),
    "strings for floats": (x(data=["1", "2", "3", "4"]), "does not hold FP32"),
    "unknown datatype": (x(datatype="COMPLEX64"), "unknown datatype"),
    "negative dimension": (x(shape=[-1, 4]), "non-negative"),
    "no inputs": ({"inputs": []}, "non-empty"),
    "missing data": ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4]}]}, "needs data"),
    "unknown output": ({**x(), "outputs": [{"name": "nope"}]}, "unknown output"),
    "not an object": ([1, 2, 3], "JSON object"),
}


@pytest.mark.parametrize("case", BAD_JSON_REQUESTS)
def test_bad_json_requests_are_400(server: RunningServer, case: str) -> None:
    document, message = BAD_JSON_REQUESTS[case]
    response = server.client.post("/v2/models/tabular/infer", content=orjson.dumps(document))
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert server.infer("tabular", GOOD).status_code == 200


@pytest.mark.parametrize("body", [b"", b"{", b"not json at all", b"\xff\xfe"])
def test_non_json_is_400(server: RunningServer, body: bytes) -> None:
    response = server.client.post("/v2/models/tabular/infer", content=body)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


def test_oversized_body_is_400(server: RunningServer) -> None:
    big = x(data=[1.0] * 4, padding="p" * LIMIT)
    response = server.client.post("/v2/models/tabular/infer", content=orjson.dumps(big))
    assert response.status_code == 400
    assert "exceeds the limit" in response.json()["error"]


def test_oversized_chunked_body_is_400(server: RunningServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield orjson.dumps(GOOD)[:-1] + b', "padding": "'
        for _ in range(8):
            yield b"p" * 1024
        yield b'"}'

    response = server.client.post("/v2/models/tabular/infer", content=chunks())
    assert response.status_code == 400
    assert "exceeds the limit" in response.json()["error"]


@pytest.mark.parametrize(
    ("header", "message"),
    [("abc", "non-negative integer"), ("100000", "exceeds the body"), ("-3", "non-negative integer")],
)
def test_bad_binary_header_is_400(server: RunningServer, header: str, message: str) -> None:
    response = server.client.post(
        "/v2/models/tabular/infer",
        content=orjson.dumps(GOOD),
        headers={"Inference-Header-Content-Length": header},
    )
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_binary_size_mismatch_is_400(server: RunningServer) -> None:
    header = orjson.dumps(x(data=None, parameters={"binary_data_size": 16}))
    response = server.client.post(
        "/v2/models/tabular/infer",
        content=header + b"\x00" * 12,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 400


def test_unknown_model_is_404(server: RunningServer) -> None:
    response = server.infer("nope", GOOD)
    assert response.status_code == 404
    assert "nope" in response.json()["error"]


def test_errors_are_counted_and_the_server_stays_up(server: RunningServer) -> None:
    server.client.post("/v2/models/tabular/infer", content=b"{")
    assert server.metric("kubeloop_serving_requests_total", model="tabular", version="1", code="400") >= 1
    assert server.client.get("/v2/health/ready").status_code == 200
