from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from kubeloop_serving.datatypes import Tensors
from kubeloop_serving.response import OutputChoice, choose_outputs, encode_response

pytestmark = pytest.mark.unit

OUTPUTS: Tensors = {
    "scores": np.array([[1.5, 2.0], [3.0, 4.25]], np.float32),
    "label": np.array([1, 0], np.int64),
    "half": np.array([0.5], np.float16),
    "text": np.array(["a", "bé"], dtype=object),
}


def test_json_response_is_flat_row_major() -> None:
    choices = choose_outputs(["scores", "label"], None, binary_default=False)
    encoded = encode_response("m", "2", "id-9", OUTPUTS, choices)
    assert encoded.header_length is None
    assert orjson.loads(encoded.body) == {
        "model_name": "m",
        "model_version": "2",
        "id": "id-9",
        "outputs": [
            {"name": "scores", "datatype": "FP32", "shape": [2, 2], "data": [1.5, 2.0, 3.0, 4.25]},
            {"name": "label", "datatype": "INT64", "shape": [2], "data": [1, 0]},
        ],
    }


def test_strings_and_half_floats_in_json() -> None:
    choices = [OutputChoice("text", False), OutputChoice("half", False)]
    document = orjson.loads(encode_response("m", "1", None, OUTPUTS, choices).body)
    assert "id" not in document
    assert document["outputs"] == [
        {"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a", "bé"]},
        {"name": "half", "datatype": "FP16", "shape": [1], "data": [0.5]},
    ]


def test_binary_outputs_follow_the_json_header() -> None:
    choices = choose_outputs(["scores", "text"], [("text", False), ("scores", True)], binary_default=False)
    encoded = encode_response("m", "1", None, OUTPUTS, choices)
    assert encoded.header_length is not None
    header = orjson.loads(encoded.body[: encoded.header_length])
    binary = encoded.body[encoded.header_length :]
    text, scores = header["outputs"]
    assert text["data"] == ["a", "bé"]
    assert scores["parameters"] == {"binary_data_size": 16}
    assert "data" not in scores
    np.testing.assert_array_equal(np.frombuffer(binary, "<f4").reshape(2, 2), OUTPUTS["scores"])


def test_binary_strings_are_length_prefixed() -> None:
    encoded = encode_response("m", "1", None, OUTPUTS, [OutputChoice("text", True)])
    assert encoded.header_length is not None
    binary = encoded.body[encoded.header_length :]
    assert binary == struct.pack("<I", 1) + b"a" + struct.pack("<I", 3) + "bé".encode()


def test_binary_data_output_applies_to_all_outputs() -> None:
    choices = choose_outputs(["scores", "label"], None, binary_default=True)
    assert all(choice.binary for choice in choices)
