"""Encode an OIP v2 inference response as JSON, or JSON header plus binary tensors."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from kubeloop_serving.datatypes import BYTES, Tensors, oip_datatype_of_dtype

_LENGTH_PREFIX = struct.Struct("<I")
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True)
class OutputChoice:
    """One output to return and whether it travels as binary data."""

    name: str
    binary: bool


@dataclass(frozen=True)
class EncodedResponse:
    """Response body and, for binary outputs, the length of its JSON header."""

    body: bytes
    header_length: int | None = None


def choose_outputs(
    served: Sequence[str], requested: Sequence[tuple[str, bool]] | None, binary_default: bool
) -> list[OutputChoice]:
    """The requested outputs in request order, else every served output; binary per output or default."""
    if requested is None:
        return [OutputChoice(name, binary_default) for name in served]
    return [OutputChoice(name, binary or binary_default) for name, binary in requested]


def encode_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Tensors,
    choices: Sequence[OutputChoice],
) -> EncodedResponse:
    """The response for ``outputs`` restricted to ``choices``."""
    tensors: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for choice in choices:
        array = outputs[choice.name]
        tensor: dict[str, Any] = {
            "name": choice.name,
            "datatype": oip_datatype_of_dtype(array.dtype),
            "shape": list(array.shape),
        }
        if choice.binary:
            chunk = binary_tensor_bytes(array)
            tensor["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            tensor["data"] = json_tensor_data(array)
        tensors.append(tensor)
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        document["id"] = request_id
    document["outputs"] = tensors
    header = orjson.dumps(document, option=_JSON_OPTIONS)
    if not chunks:
        return EncodedResponse(header)
    return EncodedResponse(b"".join([header, *chunks]), header_length=len(header))


def json_tensor_data(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | list[Any]:
    """Row-major flat data that orjson serialises natively (strings as a list)."""
    flat = np.ascontiguousarray(array).reshape(-1)
    if flat.dtype.kind in "OSU":
        return [_text(item) for item in flat]
    return flat


def binary_tensor_bytes(array: np.ndarray[Any, Any]) -> bytes:
    """Little-endian raw bytes; BYTES as 4-byte-length-prefixed UTF-8 elements."""
    if oip_datatype_of_dtype(array.dtype) == BYTES:
        parts = []
        for item in np.asarray(array).reshape(-1):
            raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts += [_LENGTH_PREFIX.pack(len(raw)), raw]
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def _text(item: object) -> str:
    return item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
