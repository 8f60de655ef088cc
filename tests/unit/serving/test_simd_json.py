"""The simdjson path for large bodies decodes exactly what orjson's path decodes and refuses exactly
what it refuses, with the same message: checked on the decoder fuzzer's bodies and on the inputs
where the two parsers differ (byte order mark, repeated keys, nested data, big numbers)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from kubeloop_serving import request as request_module
from kubeloop_serving import simd_json
from kubeloop_serving.errors import ServingError
from kubeloop_serving.request import InferenceRequest, decode_request
from tests.unit.serving.test_decoder_fuzz import LIMIT, bodies

pytestmark = pytest.mark.unit


@contextmanager
def simd_json_from(size: float) -> Iterator[None]:
    saved = request_module.SIMD_JSON_BYTES
    request_module.SIMD_JSON_BYTES = size  # type: ignore[assignment]
    try:
        yield
    finally:
        request_module.SIMD_JSON_BYTES = saved


def outcome(body: bytes, header_length: int | None, simd: bool) -> InferenceRequest | tuple[type, str]:
    with simd_json_from(0 if simd else math.inf):
        try:
            return decode_request(body, header_length, LIMIT)
        except ServingError as error:
            return type(error), str(error)


def assert_same(body: bytes, header_length: int | None = None) -> None:
    fast, slow = outcome(body, header_length, True), outcome(body, header_length, False)
    if isinstance(slow, tuple) or isinstance(fast, tuple):
        assert fast == slow
        return
    assert (fast.id, fast.outputs, fast.binary_output, fast.parameters) == (
        slow.id,
        slow.outputs,
        slow.binary_output,
        slow.parameters,
    )
    assert fast.inputs.keys() == slow.inputs.keys()
    for name, array in slow.inputs.items():
        assert fast.inputs[name].dtype == array.dtype and fast.inputs[name].shape == array.shape
        if array.dtype == object:
            assert fast.inputs[name].tolist() == array.tolist()
        else:
            np.testing.assert_array_equal(fast.inputs[name], array)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_the_fuzzers_bodies_decode_or_fail_the_same_on_both_paths(case: tuple[bytes, int | None]) -> None:
    assert_same(*case)


def body(data: str, datatype: str = "FP32", shape: str = "[4]", extra: str = "") -> bytes:
    return (
        '{"id":"r1",'
        + extra
        + '"inputs":[{"name":"x","datatype":"'
        + datatype
        + '","shape":'
        + shape
        + ',"data":'
        + data
        + "}]}"
    ).encode()


DIFFERING = {
    "byte order mark": b"\xef\xbb\xbf" + body("[1.5,2,3,4]"),
    "repeated key at the top": body("[1.5,2,3,4]", extra='"id":"r0",'),
    "repeated key in an input": body("[1.5,2,3,4]", shape='[4],"shape":[2,2]'),
    "repeated data": body('[1.5,2,3,4],"data":[0.5,0.5,0.5,0.5]'),
    "repeated key in parameters": body("[1.5,2,3,4]", extra='"parameters":{"a":1,"a":2},'),
    "nested data one per element": body("[1.5,[2.0],3,4]"),
    "nested data with an empty list": body("[1.5,[],[2.0,3.0],4]"),
    "nested data only": body("[[1.5,2.0],[3.0,4.0]]", shape="[2,2]"),
    "a bracket in a string": body("[1.5,2,3,4]", extra='"parameters":{"note":"[x]"},'),
    "a bool among floats": body("[1.5,true,3,4]"),
    "a string among floats": body('[1.5,"2",3,4]'),
    "null among floats": body("[1.5,null,3,4]"),
    "an integer beyond 64 bits": body("[1.5,18446744073709551616,3,4]"),
    "an integer beyond int64": body("[1.5,9223372036854775808,3,4]"),
    "a float beyond float64": body("[1.5,1e400,3,4]"),
    "an integer first": body("[1,2.5,3,4]"),
    "floats for an integer input": body("[1.5,2,3,4]", datatype="INT32"),
    "floats for UINT64": body("[1.5,2,3,4]", datatype="UINT64"),
    "a count that does not match": body("[1.5,2,3]"),
    "deep parameters": body("[1.5,2,3,4]", extra='"parameters":{"a":' + "[" * 600 + "]" * 600 + "},"),
    "a lone surrogate": body("[1.5,2,3,4]", extra='"parameters":{"a":"\\ud800"},'),
    "bad UTF-8": body("[1.5,2,3,4]", extra='"parameters":{"a":"BAD"},').replace(b"BAD", b"\xff"),
    "not an object": b"[1.5,2,3,4]",
    "inputs not a list": b'{"inputs":{"name":"x"}}',
    "an input not an object": b'{"inputs":[[1.5]]}',
    "trailing content": body("[1.5,2,3,4]") + b"x",
    "trailing whitespace": body("[1.5,2,3,4]") + b" \n",
}


@pytest.mark.parametrize("case", DIFFERING.values(), ids=DIFFERING.keys())
def test_where_the_parsers_differ_the_decoder_does_not(case: bytes) -> None:
    assert_same(case)


FALLS_BACK = [
    "byte order mark",
    "repeated key at the top",
    "repeated key in an input",
    "repeated data",
    "repeated key in parameters",
    "nested data one per element",
    "nested data with an empty list",
    "a bracket in a string",
    "an integer beyond 64 bits",
    "deep parameters",
]


@pytest.mark.parametrize("name", FALLS_BACK)
def test_it_leaves_to_orjson_what_it_cannot_read_as_orjson_would(name: str) -> None:
    assert simd_json.load(DIFFERING[name]) is None


def image_body(seed: int, size: int = 64) -> tuple[bytes, np.ndarray[Any, Any]]:
    image = np.random.default_rng(seed).random((1, 3, size, size), dtype=np.float32)
    tensor = {"name": "input", "datatype": "FP32", "shape": list(image.shape), "data": image.ravel().tolist()}
    return orjson.dumps({"inputs": [tensor]}), image


@pytest.mark.parametrize(
    "size", [64, 256], ids=["115 KB, the thread's parser", "3.7 MB, a parser of its own"]
)
def test_a_large_float_tensor_is_copied_to_numpy_without_a_python_list(size: int) -> None:
    raw, image = image_body(0, size)
    assert (len(raw) > simd_json._KEEP_PARSER_BYTES) == (size == 256)
    document = simd_json.load(raw)
    assert document is not None
    data = document["inputs"][0]["data"]
    assert isinstance(data, np.ndarray) and data.dtype == np.float64
    np.testing.assert_array_equal(decode_request(raw).inputs["input"], image)


def test_threads_decoding_at_once_each_get_their_own_answer() -> None:
    cases = [image_body(seed) for seed in range(8)]

    def decode(case: tuple[bytes, np.ndarray[Any, Any]]) -> bool:
        return bool(np.array_equal(decode_request(case[0]).inputs["input"], case[1]))

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(decode, cases * 8))
