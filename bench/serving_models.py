"""The benchmark's ONNX models, generated with onnx.helper (deterministic weights, no torch)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


@dataclass(frozen=True)
class BenchModel:
    """A generated model and the shape of one request's input."""

    name: str
    path: Path
    input_name: str
    request_shape: tuple[int, ...]


def _weights(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    return numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32), name)


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tabular_mlp(directory: Path, features: int = 64, hidden: int = 256, classes: int = 10) -> BenchModel:
    """x [N, 64] -> Gemm+ReLU (256) -> Gemm+ReLU (256) -> Gemm -> Softmax [N, 10]."""
    rng = np.random.default_rng(1)
    widths = [features, hidden, hidden, classes]
    nodes, initializers = [], []
    current = "x"
    for layer, (width_in, width_out) in enumerate(itertools.pairwise(widths)):
        weight, bias, out = f"w{layer}", f"b{layer}", f"h{layer}"
        initializers += [_weights(rng, weight, (width_in, width_out)), _weights(rng, bias, (width_out,))]
        nodes.append(helper.make_node("Gemm", [current, weight, bias], [out]))
        current = out
        if layer < len(widths) - 2:
            nodes.append(helper.make_node("Relu", [current], [f"{out}_relu"]))
            current = f"{out}_relu"
    nodes.append(helper.make_node("Softmax", [current], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes,
        "tabular_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes])],
        initializers,
    )
    return BenchModel("mlp", _save(graph, directory / "mlp.onnx"), "x", (1, features))


def small_cnn(directory: Path, size: int = 64, classes: int = 10) -> BenchModel:
    """image [N, 3, 64, 64] -> 4 Conv+ReLU (32, 64, 128, 128 ch; strides 1, 2, 2, 2) -> GAP -> Gemm [N, 10].

    About 100 MFLOPs per image: mid-size for a CPU, with a 12,288-float JSON request.
    """
    rng = np.random.default_rng(2)
    channels = [3, 32, 64, 128, 128]
    strides = [1, 2, 2, 2]
    nodes, initializers = [], []
    current = "image"
    for layer, stride in enumerate(strides):
        weight, bias = f"conv{layer}_w", f"conv{layer}_b"
        initializers += [
            _weights(rng, weight, (channels[layer + 1], channels[layer], 3, 3)),
            _weights(rng, bias, (channels[layer + 1],)),
        ]
        nodes += [
            helper.make_node(
                "Conv", [current, weight, bias], [f"conv{layer}"], pads=[1, 1, 1, 1], strides=[stride, stride]
            ),
            helper.make_node("Relu", [f"conv{layer}"], [f"relu{layer}"]),
        ]
        current = f"relu{layer}"
    initializers += [_weights(rng, "fc_w", (channels[-1], classes)), _weights(rng, "fc_b", (classes,))]
    nodes += [
        helper.make_node("GlobalAveragePool", [current], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "small_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
        initializers,
    )
    return BenchModel("cnn", _save(graph, directory / "cnn.onnx"), "image", (1, 3, size, size))


def request_body(model: BenchModel, seed: int = 0) -> bytes:
    """The OIP v2 JSON request both servers get: one row, flat data."""
    import json

    values = np.random.default_rng(seed).standard_normal(int(np.prod(model.request_shape))).astype(np.float32)
    document = {
        "inputs": [
            {
                "name": model.input_name,
                "shape": list(model.request_shape),
                "datatype": "FP32",
                "data": [round(float(v), 6) for v in values],
            }
        ]
    }
    return json.dumps(document, separators=(",", ":")).encode()
