"""Hostile requests are refused at the door: absurd shapes, memory bombs, bodies that never finish."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from kubeloop_serving.errors import InvalidRequestError, PayloadTooLargeError
from kubeloop_serving.request import decode_binary_strings, decode_request
from tests.unit.serving.abuse import TrickleResult, bytes_bomb, peak_rss_bytes, reset_peak_rss, trickle_post
from tests.unit.serving.conftest import RunningServer, serve_in_thread

pytestmark = pytest.mark.unit

GOOD = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
INFER = "/v2/models/tabular/infer"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tabular_path: Path) -> Iterator[RunningServer]:
    with serve_in_thread(tabular_path, model_name="tabular", body_timeout_seconds=1.0) as running:
        yield running


def test_a_300_byte_bytes_request_declaring_a_billion_strings_allocates_nothing(
    server: RunningServer,
) -> None:
    body, headers = bytes_bomb(10**9)
    assert 250 < len(body) < 300
    reset = reset_peak_rss()
    before = peak_rss_bytes()
    started = time.perf_counter()
    response = server.client.post(INFER, content=body, headers=headers)
    elapsed = time.perf_counter() - started
    after = peak_rss_bytes()
    print(
        f"\nBYTES bomb ({len(body)} bytes, shape [1e9]): {response.status_code} in {elapsed * 1000:.1f} ms, "
        f"VmHWM {before / MIB:.1f} -> {after / MIB:.1f} MiB (peak reset: {reset})"
    )
    assert response.status_code == 400
    assert "declares 1000000000 elements" in response.json()["error"]
    assert after - before < 32 * MIB  # the old decoder took ~7.7 GB here


@pytest.mark.parametrize(
    "shape",
    [
        "[4611686018427387904]",  # 2**62 elements
        "[0, 4294967296, 4294967296]",  # an empty tensor whose other dimensions overflow NumPy
        "[9223372036854775807, 9223372036854775807]",
        "[1180591620717411303424]",  # beyond 64 bits
        "[-1]",
        "[" + ", ".join(["1"] * 40) + "]",
    ],
)
@pytest.mark.parametrize("datatype", ["BYTES", "FP32", "BOOL"])
def test_absurd_shapes_are_400_never_500(server: RunningServer, shape: str, datatype: str) -> None:
    json_body = f'{{"inputs":[{{"name":"x","datatype":"{datatype}","shape":{shape},"data":[1]}}]}}'.encode()
    assert server.client.post(INFER, content=json_body).status_code == 400
    header = (
        f'{{"inputs":[{{"name":"x","datatype":"{datatype}","shape":{shape},'
        f'"parameters":{{"binary_data_size":8}}}}]}}'
    ).encode()
    response = server.client.post(
        INFER, content=header + b"\x00" * 8, headers={"Inference-Header-Content-Length": str(len(header))}
    )
    assert response.status_code == 400, response.text


def test_binary_strings_are_counted_before_allocating() -> None:
    with pytest.raises(InvalidRequestError, match="cannot hold 1000000000 length-prefixed strings"):
        decode_binary_strings(memoryview(b"\x00" * 16), 10**9, "s")


def test_decoded_memory_is_bounded_per_request() -> None:
    body = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1000], "data": [0] * 1000}]})
    assert decode_request(body, None, 8000).inputs["x"].nbytes == 8000
    with pytest.raises(PayloadTooLargeError, match="at most 7999"):
        decode_request(body, None, 7999)
    strings = {"inputs": [{"name": "s", "datatype": "BYTES", "shape": [500], "data": ["a"] * 500}]}
    with pytest.raises(PayloadTooLargeError):
        decode_request(orjson.dumps(strings), None, 10_000)


def test_decoded_memory_bound_is_a_413(tabular_path: Path) -> None:
    n = 4000
    body = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [n, 4], "data": [0] * 4 * n}]})
    limit = 32 * 1024  # body ~32 KiB, decoded 64 KiB: allowed at factor 2.5, refused at factor 1
    with serve_in_thread(
        tabular_path, model_name="tabular", max_request_bytes=limit, max_decoded_factor=1
    ) as tight:
        response = tight.client.post(INFER, content=body)
        assert response.status_code == 413, response.text
        assert "bytes of memory" in response.json()["error"]
    with serve_in_thread(
        tabular_path, model_name="tabular", max_request_bytes=limit, max_decoded_factor=2.5
    ) as roomy:
        assert roomy.client.post(INFER, content=body).status_code == 200


def _latencies(server: RunningServer, count: int, while_alive: threading.Thread | None = None) -> list[float]:
    """Latencies of ``count`` sequential requests (more: until ``while_alive`` has finished)."""
    out: list[float] = []
    while len(out) < count or (while_alive is not None and while_alive.is_alive()):
        started = time.perf_counter()
        response = server.infer("tabular", GOOD)
        out.append(time.perf_counter() - started)
        assert response.status_code == 200
    return out


def test_a_trickled_body_gets_408_while_other_requests_are_answered(server: RunningServer) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    baseline = _latencies(server, 40)
    result: list[TrickleResult] = []
    slow = threading.Thread(
        target=lambda: result.append(trickle_post(port, INFER, orjson.dumps(GOOD), 0.05, 20.0))
    )
    slow.start()
    during = _latencies(server, 40, while_alive=slow)  # answered while the slow body is mid-read
    slow.join(30)
    print(
        f"\nslow body: {result[0].status} after {result[0].seconds:.2f} s "
        f"({result[0].bytes_sent} bytes sent); "
        f"others: median {statistics.median(baseline) * 1000:.2f} ms alone, "
        f"{statistics.median(during) * 1000:.2f} ms during the slow body ({len(during)} requests, "
        f"p99 {sorted(during)[int(len(during) * 0.99)] * 1000:.2f} ms)"
    )
    assert result and result[0].status == 408
    assert len(during) >= 40  # every one answered 200 (asserted in _latencies)
