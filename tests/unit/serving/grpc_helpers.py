"""A `kubeloop serve` process with its gRPC port, a client stub, and OIP tensors built by hand."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import numpy as np

from kubeloop_serving.oip_grpc import grpc_predict_v2_pb2 as pb
from kubeloop_serving.oip_grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from tests.fixtures.ports import free_port
from tests.fixtures.serve import ServerProcess
from tests.unit.serving.conftest import metric_value, wait_for

#: OIP datatype -> the InferTensorContents field that carries it (FP16: as KServe's clients send it).
TYPED_FIELD = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP16": "fp32_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

#: One [2, 2] value per OIP datatype, with each type's edge values.
IDENTITY_VALUES: dict[str, np.ndarray[Any, Any]] = {
    "BOOL": np.array([[True, False], [False, True]]),
    "UINT8": np.array([[0, 255], [1, 2]], np.uint8),
    "UINT16": np.array([[0, 65535], [1, 2]], np.uint16),
    "UINT32": np.array([[0, 2**32 - 1], [1, 2]], np.uint32),
    "UINT64": np.array([[0, 2**64 - 1], [1, 2]], np.uint64),
    "INT8": np.array([[-128, 127], [0, -1]], np.int8),
    "INT16": np.array([[-(2**15), 2**15 - 1], [0, -1]], np.int16),
    "INT32": np.array([[-(2**31), 2**31 - 1], [0, -1]], np.int32),
    "INT64": np.array([[-(2**63), 2**63 - 1], [0, -1]], np.int64),
    "FP16": np.array([[0.5, -1.25], [65504.0, 0.0]], np.float16),
    "FP32": np.array([[0.1, -2.5], [3.4e38, 0.0]], np.float32),
    "FP64": np.array([[0.1, -2.5], [1e300, 0.0]], np.float64),
    "BYTES": np.array([["a", "é"], ["", "xyz"]], dtype=object),
}


def raw_bytes(array: np.ndarray[Any, Any]) -> bytes:
    """Triton's raw encoding: little-endian elements; BYTES each a 4-byte length, then UTF-8."""
    if array.dtype == object:
        parts = [item.encode() for item in array.reshape(-1)]
        return b"".join(struct.pack("<I", len(part)) + part for part in parts)
    return array.astype(array.dtype.newbyteorder("<")).tobytes()


def from_raw(raw: bytes, datatype: str, shape: list[int]) -> np.ndarray[Any, Any]:
    if datatype == "BYTES":
        items, offset = [], 0
        while offset < len(raw):
            (length,) = struct.unpack_from("<I", raw, offset)
            items.append(raw[offset + 4 : offset + 4 + length].decode())
            offset += 4 + length
        return np.array(items, dtype=object).reshape(shape)
    return np.frombuffer(raw, IDENTITY_VALUES[datatype].dtype.newbyteorder("<")).reshape(shape)


def typed_input(
    name: str, datatype: str, array: np.ndarray[Any, Any]
) -> pb.ModelInferRequest.InferInputTensor:
    tensor = pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=list(array.shape))
    flat = array.reshape(-1)
    values = [item.encode() for item in flat] if datatype == "BYTES" else flat.tolist()
    getattr(tensor.contents, TYPED_FIELD[datatype]).extend(values)
    return tensor


def infer_request(
    model: str, inputs: dict[str, tuple[str, np.ndarray[Any, Any]]], raw: bool, **fields: Any
) -> pb.ModelInferRequest:
    """A ModelInferRequest of ``inputs`` (name -> (datatype, array)), raw or typed contents."""
    request = pb.ModelInferRequest(model_name=model, **fields)
    for name, (datatype, array) in inputs.items():
        if raw:
            request.inputs.add(name=name, datatype=datatype, shape=list(array.shape))
            request.raw_input_contents.append(raw_bytes(array))
        else:
            request.inputs.append(typed_input(name, datatype, array))
    return request


def outputs_of(response: pb.ModelInferResponse) -> dict[str, np.ndarray[Any, Any]]:
    """Every output as an array, read from raw_output_contents when the server answered raw."""
    arrays = {}
    for index, tensor in enumerate(response.outputs):
        shape = list(tensor.shape)
        if response.raw_output_contents:
            arrays[tensor.name] = from_raw(response.raw_output_contents[index], tensor.datatype, shape)
            continue
        values = list(getattr(tensor.contents, TYPED_FIELD[tensor.datatype]))
        if tensor.datatype == "BYTES":
            arrays[tensor.name] = np.array([v.decode() for v in values], dtype=object).reshape(shape)
        else:
            dtype = IDENTITY_VALUES[tensor.datatype].dtype
            arrays[tensor.name] = np.array(values, dtype=dtype).reshape(shape)
    return arrays


@dataclass
class GrpcServer:
    """A server process, its gRPC address and a stub on one channel."""

    process: ServerProcess
    address: str
    stub: Any

    def call_code(self, method: Callable[..., Any], request: Any) -> tuple[grpc.StatusCode, str]:
        """The status code and message a call ends with (OK and "" when it succeeds)."""
        try:
            method(request, timeout=60)
        except grpc.RpcError as error:
            return error.code(), error.details()
        return grpc.StatusCode.OK, ""

    def metric(self, name: str, **labels: str) -> float:
        """One sample of the server's /metrics (served over REST, shared with gRPC)."""
        return metric_value(httpx.get(self.process.url + "/metrics").text, name, **labels)


def is_live(stub: Any) -> bool:
    try:
        return bool(stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live)
    except grpc.RpcError:
        return False


@contextlib.contextmanager
def grpc_server(
    start: Callable[..., ServerProcess], wait: bool = True, **settings: str
) -> Iterator[GrpcServer]:
    """``kubeloop serve`` with gRPC on a free port; ready (model loaded) unless ``wait`` is False."""
    port = free_port()
    process = start(grpc_port=str(port), **settings)
    address = f"127.0.0.1:{port}"
    with grpc.insecure_channel(address) as channel:
        stub = GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]  # generated, untyped
        if wait:
            assert process.wait_ready(), process.output
        wait_for(lambda: is_live(stub) or process.process.poll() is not None, "the gRPC port")
        yield GrpcServer(process, address, stub)
