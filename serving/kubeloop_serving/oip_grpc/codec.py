"""ModelInferRequest -> InferenceRequest, outputs -> ModelInferResponse, and back (a shadow's answer).

Inputs go through the REST decoder's checks (kubeloop_serving.request): a declared shape is checked
against the bytes (raw) or values (typed contents) that carry it, and its decoded size charged to the
request's budget, before any array is allocated. FP16 has no typed field: it travels raw, or as
``fp32_contents`` as KServe's clients send it; answers use the same fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import orjson
from google.protobuf.message import DecodeError

from kubeloop_serving.attributes import ATTRIBUTES_PARAMETER
from kubeloop_serving.datatypes import BYTES, Tensors, oip_datatype_of_dtype
from kubeloop_serving.errors import InvalidRequestError
from kubeloop_serving.oip_grpc import grpc_predict_v2_pb2 as pb
from kubeloop_serving.request import (
    InferenceRequest,
    RequestedOutput,
    datatype_and_shape,
    decode_data_input,
    decode_raw_input,
    refusing_what_numpy_refuses,
)
from kubeloop_serving.request_bounds import DecodeBudget
from kubeloop_serving.response import binary_tensor_bytes

#: OIP datatype -> the InferTensorContents field that carries it.
CONTENTS_FIELDS: Final[dict[str, str]] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP16": "fp32_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    BYTES: "bytes_contents",
}


def parse_infer_request(body: bytes) -> pb.ModelInferRequest:
    """The wire bytes of a ModelInfer call as a message; 400 when they are not one."""
    try:
        message: pb.ModelInferRequest = pb.ModelInferRequest.FromString(body)
    except DecodeError as error:
        raise InvalidRequestError(f"request is not a valid ModelInferRequest: {error}") from None
    return message


def decode_infer_request(message: pb.ModelInferRequest, max_decoded_bytes: int | None) -> InferenceRequest:
    """The request's inputs as arrays plus what the client wants back (every output when none named)."""
    with refusing_what_numpy_refuses():
        inputs = decode_inputs(message, DecodeBudget(max_decoded_bytes))
    requested = [RequestedOutput(output.name, False) for output in message.outputs]
    return InferenceRequest(
        inputs=inputs,
        id=message.id or None,
        outputs=requested or None,
        parameters=parameter_values(message.parameters),
    )


def decode_inputs(message: pb.ModelInferRequest, budget: DecodeBudget) -> Tensors:
    """Every input, from ``raw_input_contents`` (one entry per input, in order) or typed contents."""
    return _decode_tensors(message.inputs, message.raw_input_contents, budget, "input")


def decode_infer_response(body: bytes, max_decoded_bytes: int | None) -> tuple[str | None, Tensors]:
    """(model_version, outputs) of a ModelInferResponse's bytes, checked as requests are (ValueError or
    InvalidRequestError when they are not one)."""
    try:
        message = pb.ModelInferResponse.FromString(body)
    except DecodeError as error:
        raise ValueError(f"the answer is not a valid ModelInferResponse: {error}") from None
    with refusing_what_numpy_refuses():
        outputs = _decode_tensors(
            message.outputs, message.raw_output_contents, DecodeBudget(max_decoded_bytes), "output"
        )
    return message.model_version or None, outputs


def _decode_tensors(tensors: Sequence[Any], raw: Sequence[bytes], budget: DecodeBudget, kind: str) -> Tensors:
    if not tensors:
        raise InvalidRequestError(f"{kind}s must be a non-empty list")
    if raw and len(raw) != len(tensors):
        raise InvalidRequestError(
            f"raw_{kind}_contents has {len(raw)} entries for {len(tensors)} {kind}s; "
            f"raw contents need one entry per {kind}"
        )
    decoded: Tensors = {}
    for index, tensor in enumerate(tensors):
        name = tensor.name
        if name in decoded:
            raise InvalidRequestError(f"{kind} {name!r} appears twice")
        datatype, shape = datatype_and_shape({"datatype": tensor.datatype, "shape": list(tensor.shape)}, name)
        if raw:
            if tensor.HasField("contents"):
                raise InvalidRequestError(
                    f"{kind} {name!r} has contents although raw_{kind}_contents is used"
                )
            decoded[name] = decode_raw_input(memoryview(raw[index]), datatype, shape, name, budget)
        else:
            decoded[name] = _decode_typed(tensor.contents, datatype, shape, name, budget)
    return decoded


def _decode_typed(
    contents: pb.InferTensorContents, datatype: str, shape: tuple[int, ...], name: str, budget: DecodeBudget
) -> np.ndarray[Any, Any]:
    values: Sequence[Any] = getattr(contents, CONTENTS_FIELDS[datatype])
    if datatype == BYTES:
        total = sum(len(value) for value in values)
        return decode_data_input(_texts(values, name), datatype, shape, name, max(total, len(values)), budget)
    return decode_data_input(list(values), datatype, shape, name, len(values), budget)


def _texts(values: Sequence[bytes], name: str) -> list[str]:
    try:
        return [value.decode("utf-8") for value in values]
    except UnicodeDecodeError:
        raise InvalidRequestError(f"input {name!r} holds a string that is not UTF-8") from None


def parameter_values(parameters: Any) -> dict[str, Any]:
    """A protobuf ``map<string, InferParameter>`` as the plain values REST's ``parameters`` holds.

    An InferParameter holds scalars only, so ``attributes`` (an object in REST) comes as JSON text.
    """
    values: dict[str, Any] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is not None:
            values[key] = getattr(parameter, choice)
    attributes = values.get(ATTRIBUTES_PARAMETER)
    if isinstance(attributes, str):
        try:
            values[ATTRIBUTES_PARAMETER] = orjson.loads(attributes)
        except orjson.JSONDecodeError:
            raise InvalidRequestError("parameters.attributes must be JSON text (a string_param)") from None
    return values


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str,
    outputs: Tensors,
    names: Sequence[str],
    raw: bool,
) -> pb.ModelInferResponse:
    """The answer with ``names`` in order: ``raw_output_contents`` when ``raw``, else typed contents."""
    response = pb.ModelInferResponse(model_name=model_name, model_version=model_version, id=request_id)
    for name in names:
        array = outputs[name]
        datatype = oip_datatype_of_dtype(array.dtype)
        tensor = response.outputs.add(name=name, datatype=datatype, shape=array.shape)
        if raw:
            response.raw_output_contents.append(binary_tensor_bytes(array))
        else:
            getattr(tensor.contents, CONTENTS_FIELDS[datatype]).extend(_typed_values(array, datatype))
    return response


def _typed_values(array: np.ndarray[Any, Any], datatype: str) -> list[Any]:
    flat = np.ascontiguousarray(array).reshape(-1)
    if datatype == BYTES:
        return [item if isinstance(item, bytes) else str(item).encode("utf-8") for item in flat]
    values: list[Any] = flat.tolist()
    return values
