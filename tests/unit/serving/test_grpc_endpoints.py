"""OIP v2 gRPC against a real `kubeloop serve` process: every RPC, raw and typed contents, every error."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from kubeloop_serving.oip_grpc import grpc_predict_v2_pb2 as pb
from tests.fixtures.serve import ServerProcess
from tests.unit.serving.conftest import (
    OPSET,
    tabular_reference,
)
from tests.unit.serving.grpc_helpers import (
    IDENTITY_VALUES,
    GrpcServer,
    grpc_server,
    infer_request,
    outputs_of,
    raw_bytes,
)

pytestmark = pytest.mark.unit

X = np.arange(8, dtype=np.float32).reshape(2, 4)
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def tabular(module_process: Callable[..., ServerProcess], tabular_path: Path) -> Iterator[GrpcServer]:
    with grpc_server(
        module_process,
        model_uri=str(tabular_path),
        model_name="tab",
        model_version="3",
        max_request_bytes="65536",
    ) as server:
        yield server


@pytest.fixture(scope="module")
def identity(module_process: Callable[..., ServerProcess], identity_path: Path) -> Iterator[GrpcServer]:
    with grpc_server(
        module_process,
        model_uri=str(identity_path),
        model_name="id",
        max_request_bytes="65536",
        max_decoded_factor="1",
    ) as server:
        yield server


def tab_request(raw: bool = True, **fields: object) -> pb.ModelInferRequest:
    return infer_request("tab", {"x": ("FP32", X)}, raw, **fields)


def test_health_and_metadata_rpcs(tabular: GrpcServer) -> None:
    stub = tabular.stub
    assert stub.ServerLive(pb.ServerLiveRequest()).live
    assert stub.ServerReady(pb.ServerReadyRequest()).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="tab")).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="tab", version="3")).ready
    server = stub.ServerMetadata(pb.ServerMetadataRequest())
    assert (server.name, list(server.extensions)) == ("kubeloop", ["binary_tensor_data"])
    model = stub.ModelMetadata(pb.ModelMetadataRequest(name="tab"))
    assert (model.name, list(model.versions), model.platform) == ("tab", ["3"], "onnxruntime_onnx")
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [("x", "FP32", [-1, 4])]
    assert [(t.name, t.datatype, list(t.shape)) for t in model.outputs] == [
        ("scores", "FP32", [-1, 3]),
        ("label", "INT64", [-1]),
    ]


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_model_infer_answers_in_the_requests_encoding(tabular: GrpcServer, raw: bool) -> None:
    response = tabular.stub.ModelInfer(tab_request(raw, id="req-1"))
    assert (response.model_name, response.model_version, response.id) == ("tab", "3", "req-1")
    assert bool(response.raw_output_contents) is raw
    assert [(t.name, t.datatype, list(t.shape)) for t in response.outputs] == [
        ("scores", "FP32", [2, 3]),
        ("label", "INT64", [2]),
    ]
    scores, label = tabular_reference(X)
    outputs = outputs_of(response)
    np.testing.assert_allclose(outputs["scores"], scores, rtol=1e-6)
    np.testing.assert_array_equal(outputs["label"], label)


def test_requested_outputs_and_the_request_id_header(tabular: GrpcServer) -> None:
    request = tab_request(outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="label")])
    response, call = tabular.stub.ModelInfer.with_call(request, metadata=[("x-request-id", "from-header")])
    assert [t.name for t in response.outputs] == ["label"]
    assert response.id == "from-header"
    assert call.code() == grpc.StatusCode.OK
    generated = tabular.stub.ModelInfer(tab_request()).id
    assert len(generated) == 32


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_every_datatype_round_trips(identity: GrpcServer, raw: bool) -> None:
    inputs = {f"in_{datatype}": (datatype, array) for datatype, array in IDENTITY_VALUES.items()}
    response = identity.stub.ModelInfer(infer_request("id", inputs, raw))
    assert bool(response.raw_output_contents) is raw
    outputs = outputs_of(response)
    for datatype, array in IDENTITY_VALUES.items():
        tensor = next(t for t in response.outputs if t.name == f"out_{datatype}")
        assert (tensor.datatype, list(tensor.shape)) == (datatype, [2, 2])
        if datatype == "BYTES":
            assert outputs[f"out_{datatype}"].tolist() == array.tolist()
        else:
            np.testing.assert_array_equal(outputs[f"out_{datatype}"].astype(array.dtype), array)


def invalid(server: GrpcServer, request: pb.ModelInferRequest) -> str:
    code, message = server.call_code(server.stub.ModelInfer, request)
    assert code == INVALID, message
    return message


def test_requests_rest_refuses_are_invalid_argument_with_rests_message(tabular: GrpcServer) -> None:
    wrong_shape = infer_request("tab", {"x": ("FP32", np.zeros((2, 5), np.float32))}, raw=True)
    assert invalid(tabular, wrong_shape) == "input 'x' must have shape [-1, 4], got [2, 5]"
    wrong_type = infer_request("tab", {"x": ("FP64", X.astype(np.float64))}, raw=True)
    assert invalid(tabular, wrong_type) == "input 'x' must be FP32, got FP64"
    unknown = tab_request()
    unknown.inputs[0].datatype = "FP8"
    assert invalid(tabular, unknown) == "input 'x' has unknown datatype 'FP8'"
    short = tab_request()
    short.raw_input_contents[0] = short.raw_input_contents[0][:-4]
    assert "declares 8 elements" in invalid(tabular, short)
    missing = tab_request()
    missing.raw_input_contents.append(b"")
    assert "raw_input_contents has 2 entries for 1 inputs" in invalid(tabular, missing)
    typed_short = tab_request(raw=False)
    del typed_short.inputs[0].contents.fp32_contents[-1]
    assert "declares 8 elements" in invalid(tabular, typed_short)
    assert invalid(tabular, pb.ModelInferRequest(model_name="tab")) == "inputs must be a non-empty list"
    unknown_output = tab_request(outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="nope")])
    assert "unknown output 'nope'" in invalid(tabular, unknown_output)


def test_bytes_that_are_not_a_request_are_invalid_argument(tabular: GrpcServer) -> None:
    with grpc.insecure_channel(tabular.address) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as raised:
            infer(b"\xff\xff\xff", timeout=30)
    assert raised.value.code() == INVALID
    assert "not a valid ModelInferRequest" in raised.value.details()


def test_a_huge_declared_shape_is_refused_before_allocating(tabular: GrpcServer) -> None:
    huge = tab_request()
    huge.inputs[0].ClearField("shape")
    huge.inputs[0].shape.extend([2**40, 4])
    assert invalid(tabular, huge) == (
        "shape [1099511627776, 4] of input 'x' declares 4398046511104 elements; "
        "its 32 bytes of data can hold at most 8"
    )
    typed = tab_request(raw=False)
    typed.inputs[0].ClearField("shape")
    typed.inputs[0].shape.extend([2**62, 2**62])
    assert "declares" in invalid(tabular, typed)
    assert tabular.stub.ServerLive(pb.ServerLiveRequest()).live


def test_unknown_models_and_versions_are_not_found(tabular: GrpcServer) -> None:
    elsewhere = "model 'other' is not served here"
    cases = [
        (tabular.stub.ModelInfer, pb.ModelInferRequest(model_name="other"), elsewhere),
        (tabular.stub.ModelInfer, tab_request(model_version="9"), "model 'tab' has no version '9'"),
        (tabular.stub.ModelMetadata, pb.ModelMetadataRequest(name="other"), elsewhere),
        (tabular.stub.ModelReady, pb.ModelReadyRequest(name="tab", version="9"), "has no version '9'"),
    ]
    for method, request, message in cases:
        code, details = tabular.call_code(method, request)
        assert code == grpc.StatusCode.NOT_FOUND
        assert message in details


def test_oversized_messages_and_decoded_sizes_are_resource_exhausted(
    tabular: GrpcServer, identity: GrpcServer
) -> None:
    big = infer_request("tab", {"x": ("FP32", np.zeros((5000, 4), np.float32))}, raw=True)  # 80 kB > 64 KiB
    code, _ = tabular.call_code(tabular.stub.ModelInfer, big)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # 4000 empty strings: 16 kB on the wire, 244 kB of Python strings once decoded (> 1 x 64 KiB)
    strings = np.full((2000, 2), "", dtype=object)
    request = pb.ModelInferRequest(model_name="id", raw_input_contents=[raw_bytes(strings)])
    request.inputs.add(name="in_BYTES", datatype="BYTES", shape=[2000, 2])
    code, message = identity.call_code(identity.stub.ModelInfer, request)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert message.startswith("decoding input 'in_BYTES' would take 244000 bytes of memory")
    assert identity.metric("kubeloop_serving_requests_total", model="id", code="413") == 1


def reshape_model(path: Path) -> Path:
    """x [N, 4] FP32, s [2] INT64 -> Reshape(x, s): a shape that does not fit fails inside onnxruntime."""
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "s"], ["y"])],
        "reshape",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("s", TensorProto.INT64, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_failure_inside_onnxruntime_is_internal(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    model = reshape_model(tmp_path / "reshape.onnx")
    with grpc_server(server_process, model_uri=str(model), model_name="reshape") as server:
        inputs = {"x": ("FP32", X), "s": ("INT64", np.array([3, 3]))}
        code, message = server.call_code(server.stub.ModelInfer, infer_request("reshape", inputs, raw=True))
        ok = infer_request("reshape", {"x": ("FP32", X), "s": ("INT64", np.array([4, 2]))}, raw=True)
        assert outputs_of(server.stub.ModelInfer(ok))["y"].shape == (4, 2)
    assert code == grpc.StatusCode.INTERNAL
    assert message.startswith("inference failed: ")


def test_unavailable_while_loading_then_ready(
    server_process: Callable[..., ServerProcess], gated_model_url: tuple[str, threading.Event]
) -> None:
    url, gate = gated_model_url
    with grpc_server(server_process, wait=False, model_uri=url, model_name="tab") as server:
        assert not server.stub.ServerReady(pb.ServerReadyRequest()).ready
        assert not server.stub.ModelReady(pb.ModelReadyRequest(name="tab")).ready
        code, message = server.call_code(server.stub.ModelInfer, tab_request())
        assert (code, message) == (grpc.StatusCode.UNAVAILABLE, "model 'tab' is not ready")
        code, _ = server.call_code(server.stub.ModelMetadata, pb.ModelMetadataRequest(name="tab"))
        assert code == grpc.StatusCode.UNAVAILABLE
        gate.set()
        assert server.process.wait_ready()
        assert server.stub.ModelReady(pb.ModelReadyRequest(name="tab")).ready
        assert len(server.stub.ModelInfer(tab_request()).outputs) == 2


def test_sigterm_stops_grpc_and_exits_cleanly(
    server_process: Callable[..., ServerProcess], tabular_path: Path
) -> None:
    with grpc_server(server_process, model_uri=str(tabular_path), model_name="tab") as server:
        assert len(server.stub.ModelInfer(tab_request()).outputs) == 2
        assert server.process.terminate() == 0
        code, _ = server.call_code(server.stub.ModelInfer, tab_request())
    assert code == grpc.StatusCode.UNAVAILABLE


def test_a_taken_grpc_port_stops_the_server(
    server_process: Callable[..., ServerProcess], tabular: GrpcServer, tabular_path: Path
) -> None:
    port = tabular.address.rsplit(":", 1)[1]
    second = server_process(model_uri=str(tabular_path), model_name="tab", grpc_port=port)
    assert second.wait_exit() == 1
    assert f"cannot serve gRPC on port {port}" in second.output
