from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest

from kubeloop_serving import request as request_module
from kubeloop_serving.errors import InvalidRequestError
from kubeloop_serving.model import ModelSignature, TensorSpec
from kubeloop_serving.request import decode_request, validate_against

pytestmark = pytest.mark.unit

SIGNATURE = ModelSignature(
    inputs=(TensorSpec("x", "FP32", (-1, 4)),),
    outputs=(TensorSpec("scores", "FP32", (-1, 3)), TensorSpec("label", "INT64", (-1,))),
)


def request(*inputs: dict[str, Any], **extra: Any) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


def x_input(data: Any, shape: Any = None, datatype: str = "FP32") -> dict[str, Any]:
    return {"name": "x", "datatype": datatype, "shape": shape or [2, 4], "data": data}


def test_flat_and_nested_data_decode_the_same() -> None:
    flat = decode_request(request(x_input(list(range(8)))))
    nested = decode_request(request(x_input([[0, 1, 2, 3], [4, 5, 6, 7]])))
    np.testing.assert_array_equal(flat.inputs["x"], nested.inputs["x"])
    assert flat.inputs["x"].dtype == np.float32
    assert flat.inputs["x"].shape == (2, 4)


def test_id_outputs_and_parameters_are_kept() -> None:
    decoded = decode_request(
        request(
            x_input(list(range(8))),
            id="req-1",
            outputs=[{"name": "label", "parameters": {"binary_data": True}}],
            parameters={"binary_data_output": False, "custom": 1},
        )
    )
    assert decoded.id == "req-1"
    assert decoded.outputs is not None
    assert [(o.name, o.binary) for o in decoded.outputs] == [("label", True)]
    assert decoded.parameters == {"binary_data_output": False, "custom": 1}
    assert not decoded.binary_output


@pytest.mark.parametrize(
    ("datatype", "data", "dtype"),
    [
        ("BOOL", [True, False], np.bool_),
        ("UINT8", [0, 255], np.uint8),
        ("UINT16", [0, 65535], np.uint16),
        ("UINT32", [0, 2**32 - 1], np.uint32),
        ("UINT64", [0, 2**64 - 1], np.uint64),
        ("INT8", [-128, 127], np.int8),
        ("INT16", [-1, 1], np.int16),
        ("INT32", [-(2**31), 2**31 - 1], np.int32),
        ("INT64", [-(2**63), 2**63 - 1], np.int64),
        ("FP16", [0.5, -2], np.float16),
        ("FP32", [0.5, 1], np.float32),
        ("FP64", [0.1, 1e300], np.float64),
        ("BYTES", ["a", "ü"], object),
    ],
)
def test_every_datatype_decodes_from_json(datatype: str, data: list[Any], dtype: type) -> None:
    decoded = decode_request(request({"name": "t", "datatype": datatype, "shape": [2], "data": data}))
    array = decoded.inputs["t"]
    assert array.dtype == np.dtype(dtype)
    assert array.tolist() == [type(v)(v) if datatype != "FP16" else v for v in data]


@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        ("BOOL", np.array([True, False, True])),
        ("UINT16", np.array([1, 2, 65535], np.uint16)),
        ("INT64", np.array([-5, 0, 2**40], np.int64)),
        ("FP16", np.array([0.5, 1.5, -3], np.float16)),
        ("FP64", np.array([0.1, 0.2, 0.3])),
    ],
)
def test_binary_tensor_extension(datatype: str, values: np.ndarray) -> None:
    raw = values.astype(values.dtype.newbyteorder("<")).tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "t",
                    "datatype": datatype,
                    "shape": [3],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    )
    decoded = decode_request(header + raw, header_length=len(header))
    np.testing.assert_array_equal(decoded.inputs["t"], values)


def test_binary_strings_and_mixed_json_inputs() -> None:
    strings = [b"hello", b"", "w\u00f6rld".encode()]
    raw = b"".join(struct.pack("<I", len(s)) + s for s in strings)
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "s",
                    "datatype": "BYTES",
                    "shape": [3],
                    "parameters": {"binary_data_size": len(raw)},
                },
                {"name": "n", "datatype": "INT32", "shape": [1], "data": [7]},
            ]
        }
    )
    decoded = decode_request(header + raw, header_length=len(header))
    assert decoded.inputs["s"].tolist() == ["hello", "", "w\u00f6rld"]
    assert decoded.inputs["n"].tolist() == [7]


@pytest.mark.parametrize(
    ("body", "header_length", "message"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "must be a JSON object"),
        (request(), None, "non-empty list"),
        (orjson.dumps({"inputs": [{"datatype": "FP32", "shape": [1], "data": [1]}]}), None, "string name"),
        (request(x_input(list(range(8)), datatype="FP8")), None, "unknown datatype"),
        (request(x_input(list(range(8)), shape=[2, -4])), None, "non-negative integers"),
        (request(x_input(list(range(8)), shape=[2, True])), None, "non-negative integers"),
        (request(x_input(list(range(8)), shape=[2, 4.0])), None, "non-negative integers"),
        (request(x_input(list(range(8)), shape=["2", 4])), None, "non-negative integers"),
        (request(x_input(list(range(8)), shape="2x4")), None, "non-negative integers"),
        (request({**x_input(list(range(8))), "parameters": None}), None, "parameters of input 'x' must be"),
        (request({**x_input(list(range(8))), "parameters": [1]}), None, "parameters of input 'x' must be"),
        (request(x_input(list(range(8))), parameters=None), None, "parameters must be a JSON object"),
        (request(x_input(list(range(7)))), None, "has 7 elements"),
        (request(x_input([[1, 2, 3, 4], [5, 6, 7]])), None, "ragged"),
        (request(x_input(["a"] * 8)), None, "does not hold FP32"),
        (request(x_input([1.5] * 8, datatype="INT32")), None, "does not hold INT32"),
        (request(x_input([300] * 8, datatype="UINT8")), None, "out of range"),
        (request(x_input([1] * 8, datatype="BOOL")), None, "does not hold BOOL"),
        (request(x_input([1] * 8, datatype="BYTES")), None, "must be strings"),
        (request({"name": "x", "datatype": "FP32", "shape": [1]}), None, "needs data"),
        (request(x_input(list(range(8))), x_input(list(range(8)))), None, "appears twice"),
        (request(x_input(list(range(8))), id=5), None, "id must be a string"),
        (request(x_input(list(range(8))), outputs="label"), None, "outputs must be a list"),
        (request(x_input(list(range(8))), outputs=[{"id": 1}]), None, "output needs a string name"),
        (request(x_input(list(range(8)))) + b"xx", 10_000, "exceeds the body"),
        (request(x_input(list(range(8)))) + b"\x00\x00", -1, "exceeds the body"),
    ],
)
def test_malformed_requests_are_refused(body: bytes, header_length: int | None, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        decode_request(body, header_length)


def test_binary_sizes_must_add_up() -> None:
    header = orjson.dumps(
        {"inputs": [{"name": "t", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}]}
    )
    with pytest.raises(InvalidRequestError, match="does not fit"):
        decode_request(header + b"\x00" * 4, header_length=len(header))
    with pytest.raises(InvalidRequestError, match="not claimed"):
        decode_request(header + b"\x00" * 12, header_length=len(header))
    wrong_count = header.replace(b'"shape":[2]', b'"shape":[3]')
    with pytest.raises(
        InvalidRequestError, match="declares 3 elements; its 8 bytes of data can hold at most 2"
    ):
        decode_request(wrong_count + b"\x00" * 8, header_length=len(wrong_count))
    too_few = header.replace(b'"shape":[2]', b'"shape":[1]')
    with pytest.raises(InvalidRequestError, match="has 2 elements"):
        decode_request(too_few + b"\x00" * 8, header_length=len(too_few))


@pytest.mark.parametrize(
    ("inputs", "outputs", "message"),
    [
        ([{"name": "y", "datatype": "FP32", "shape": [1, 4], "data": [0] * 4}], None, "unexpected input 'y'"),
        ([x_input([0] * 8, datatype="FP64")], None, "must be FP32, got FP64"),
        ([x_input([0] * 6, shape=[2, 3])], None, r"must have shape \[-1, 4\]"),
        ([x_input([0] * 8, shape=[8])], None, "must have shape"),
        ([x_input([0] * 8)], [{"name": "proba"}], "unknown output 'proba'"),
    ],
)
def test_requests_must_match_the_signature(
    inputs: list[dict[str, Any]], outputs: list[dict[str, Any]] | None, message: str
) -> None:
    extra = {"outputs": outputs} if outputs else {}
    decoded = decode_request(request(*inputs, **extra))
    with pytest.raises(InvalidRequestError, match=message):
        validate_against(decoded, SIGNATURE)


def test_missing_input_is_named() -> None:
    signature = ModelSignature(
        inputs=(TensorSpec("a", "FP32", (-1,)), TensorSpec("b", "FP32", (-1,))), outputs=SIGNATURE.outputs
    )
    decoded = decode_request(request({"name": "a", "datatype": "FP32", "shape": [1], "data": [1]}))
    with pytest.raises(InvalidRequestError, match="missing input 'b'"):
        validate_against(decoded, signature)


FLOAT_LISTS: list[list[Any]] = [
    [1.5, 2.25, -0.0, 3e38, 1e-45],
    [1.5, 2, 3, True, False],
    [0.1, 2**53 + 1, 2**63, 2**64 - 1, -(2**63)],
    [1.5, 1e300, -1e300],
    [1.5, [2.0]],
    [1.5, "2.0"],
    [1.5, None],
    [1.5, {"a": 1}],
    [[1.5, 2.5], [3.5, 4.5]],
    [1, 2.5],
    [True, 2.5],
    [True, False],
    [1.0],
]


@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64"])
@pytest.mark.parametrize("data", FLOAT_LISTS, ids=range(len(FLOAT_LISTS)))
def test_float_data_decodes_as_numpy_would_make_it(
    datatype: str, data: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lists of floats skip np.asarray's dtype discovery: same arrays, same refusals."""
    shape = (len(data),) if not isinstance(data[0], list) else (len(data), len(data[0]))

    def decoded() -> Any:
        try:
            with np.errstate(over="ignore"):
                return request_module.decode_json_tensor(data, datatype, shape, "x")
        except InvalidRequestError as error:
            return str(error)

    fast = decoded()
    numbers = all(isinstance(value, int | float) for value in data)
    assert (request_module._flat_floats(data) is not None) == (numbers and type(data[0]) is float)
    monkeypatch.setattr(request_module, "_flat_floats", lambda data: None)
    general = decoded()
    if isinstance(general, str):
        assert fast == general
    else:
        assert fast.dtype == general.dtype and fast.shape == general.shape
        np.testing.assert_array_equal(fast, general)
