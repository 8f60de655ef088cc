"""A live `kubeloop serve` for the cluster tier's observability tests: a tiny linear ONNX model, a payload
log on a temp directory, and concurrent load with a share of bad requests."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.serve import ServerProcess

MODEL = "serve"  # the ModelDeployment's name is the served model's name (KUBELOOP_SERVING_MODEL_NAME)
FEATURES = 4


def onnx_model(path: Path) -> Path:
    """x [N, 4] FP32 -> y [N, 2] = x @ W + b, made with onnx.helper."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.arange(FEATURES * 2, dtype=np.float32).reshape(FEATURES, 2) / 10
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(np.ones(2, np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


class Server(ServerProcess):
    """The server on ``onnx_model``, payload log on a temp directory."""

    def __init__(self, directory: Path, track: str = "stable") -> None:
        self.directory, self.track = directory, track
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(
            directory / "serve.log",
            model_uri=str(onnx_model(directory / "model.onnx")),
            model_name=MODEL,
            intra_op_threads="1",
            payload_log_uri=str(directory / "payloads"),
            payload_log_flush_seconds="1",
            track=track,
        )


def infer_body(rows: int, width: int = FEATURES) -> dict[str, Any]:
    data = [random.random() for _ in range(rows * width)]
    return {"inputs": [{"name": "x", "shape": [rows, width], "datatype": "FP32", "data": data}]}


class Load:
    """Concurrent inference requests until stopped (batches form while onnxruntime is busy); one in
    twenty has the wrong shape, so the error ratio is never zero."""

    def __init__(self, server: Server, workers: int = 6):
        self.server, self.workers = server, workers
        self.stopping = threading.Event()
        self.answered: dict[int, int] = {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(workers)]

    def run(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=30) as client:
            while not self.stopping.is_set():
                width = FEATURES + 1 if random.random() < 0.05 else FEATURES
                body = infer_body(random.randint(1, 8), width)
                response = client.post(f"/v2/models/{MODEL}/infer", json=body)
                with self.lock:
                    self.answered[response.status_code] = self.answered.get(response.status_code, 0) + 1

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)


def bad_requests(server: Server) -> None:
    """Non-200 answers: a wrong shape (400) and a model that is not served (404)."""
    wrong = httpx.post(f"{server.url}/v2/models/{MODEL}/infer", json=infer_body(2, FEATURES + 1), timeout=10)
    assert wrong.status_code == 400, wrong.text
    unknown = httpx.post(f"{server.url}/v2/models/nope/infer", json=infer_body(1), timeout=10)
    assert unknown.status_code == 404, unknown.text
