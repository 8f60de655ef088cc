"""Property-based fuzzing of the request decoders (JSON and the binary tensor extension).

Whatever the body: the decoder returns tensors within the memory bound or refuses with a client
error (400/413), and the server answers only 200/400/404/408/413, never a 5xx, with bounded memory.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kubeloop_serving.datatypes import NUMPY_DTYPES
from kubeloop_serving.errors import InvalidRequestError, PayloadTooLargeError
from kubeloop_serving.request import decode_request
from kubeloop_serving.request_bounds import STRING_OVERHEAD
from tests.unit.serving.abuse import peak_rss_bytes, reset_peak_rss
from tests.unit.serving.conftest import RunningServer, serve_in_thread

pytestmark = pytest.mark.unit

LIMIT = 1 << 20
MIB = 1 << 20
ALLOWED = {200, 400, 404, 408, 413}
GOOD = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": [0.5] * 8}]})

dimensions = st.one_of(
    st.integers(0, 6),
    st.sampled_from([2**31, 2**62, 2**63 - 1, 2**64, 10**9, -1]),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
)
shapes = st.one_of(st.lists(dimensions, max_size=5), st.none(), st.integers(), st.text(max_size=4))
scalars = st.one_of(
    st.integers(-(2**65), 2**65),
    st.floats(),
    st.booleans(),
    st.text(max_size=4),
    st.none(),
)
data = st.one_of(
    st.lists(scalars, max_size=24),
    st.lists(st.lists(scalars, max_size=4), max_size=6),
    scalars,
    st.dictionaries(st.text(max_size=3), scalars, max_size=2),
)
datatypes = st.one_of(st.sampled_from([*NUMPY_DTYPES, "COMPLEX64", "fp32"]), st.integers(), st.none())
sizes = st.one_of(st.none(), st.integers(-4, 80), st.sampled_from([2**62, "8", True, 1.5]))


@st.composite
def tensors(draw: st.DrawFn) -> tuple[dict[str, Any], bytes]:
    """One input entry, and the binary bytes it claims (empty when it carries JSON data)."""
    entry: dict[str, Any] = {
        "name": draw(st.sampled_from(["x", "s", "y", 3])),
        "datatype": draw(datatypes),
        "shape": draw(shapes),
    }
    size = draw(sizes)
    if size is None:
        entry["data"] = draw(data)
        return entry, b""
    entry["parameters"] = {"binary_data_size": size}
    if draw(st.booleans()):  # well-formed length-prefixed strings
        strings = draw(st.lists(st.binary(max_size=6), max_size=6))
        payload = b"".join(struct.pack("<I", len(s)) + s for s in strings)
    else:
        payload = draw(st.binary(max_size=64))
    return entry, payload


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """A request body and its Inference-Header-Content-Length (None: plain JSON)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=64)), draw(st.one_of(st.none(), st.integers(-2, 80)))
    pairs = draw(st.lists(tensors(), min_size=0, max_size=3))
    document: dict[str, Any] = {"inputs": [entry for entry, _ in pairs]}
    if draw(st.booleans()):
        document["outputs"] = draw(st.lists(st.fixed_dictionaries({"name": st.sampled_from(["label", "z"])})))
    try:
        header = orjson.dumps(document)
    except TypeError:  # an integer beyond 64 bits: write it by hand
        header = repr(document).replace("'", '"').replace("True", "true").replace("None", "null").encode()
    binary = b"".join(payload for _, payload in pairs)
    if not binary and draw(st.booleans()):
        return header, None
    return header + binary, len(header)


def decoded_bytes(array: np.ndarray[Any, Any]) -> int:
    if array.dtype == object:
        return array.size * STRING_OVERHEAD + sum(len(item) for item in array.flat)
    return int(array.nbytes)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_decoder_refuses_or_decodes_within_bounds(case: tuple[bytes, int | None]) -> None:
    body, header_length = case
    try:
        request = decode_request(body, header_length, LIMIT)
    except (InvalidRequestError, PayloadTooLargeError):
        return
    assert sum(decoded_bytes(array) for array in request.inputs.values()) <= LIMIT + len(body)


@pytest.fixture(scope="module")
def server(tabular_path: Path) -> Iterator[RunningServer]:
    with serve_in_thread(tabular_path, model_name="tabular", max_request_bytes=64 * 1024) as running:
        yield running


def test_server_answers_only_client_errors_with_bounded_memory(server: RunningServer) -> None:
    seen: dict[int, int] = {}
    reset_peak_rss()
    before = peak_rss_bytes()

    @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(bodies(), st.sampled_from(["tabular", "tabular/versions/1", "other"]))
    @example((GOOD, None), "tabular")
    def post(case: tuple[bytes, int | None], target: str) -> None:
        body, header_length = case
        headers = {} if header_length is None else {"Inference-Header-Content-Length": str(header_length)}
        response = server.client.post(f"/v2/models/{target}/infer", content=body, headers=headers)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code in ALLOWED, response.text
        assert "error" in response.json() or response.status_code == 200

    post()
    growth = peak_rss_bytes() - before
    print(
        f"\nHTTP fuzz: {sum(seen.values())} requests, statuses {dict(sorted(seen.items()))}, "
        f"VmHWM growth {growth / MIB:.1f} MiB"
    )
    assert growth < 64 * MIB
    assert seen.get(200), "the good example was not answered 200"
    assert server.client.get("/v2/health/ready").status_code == 200
