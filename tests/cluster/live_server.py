"""A live `kubeloop serve` for the cluster tier's observability tests: a tiny linear ONNX model, a payload
log on a temp directory, and concurrent load with a share of bad requests."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.cluster import ROOT, wait_for
from tests.fixtures.ports import free_port

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


@dataclass
class Server:
    """`python -m kubeloop serve` on an ONNX file, payload log on a temp directory."""

    directory: Path
    track: str = "stable"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        env = {
            **os.environ,
            "KUBELOOP_SERVING_MODEL_URI": str(onnx_model(self.directory / "model.onnx")),
            "KUBELOOP_SERVING_MODEL_NAME": MODEL,
            "KUBELOOP_SERVING_HOST": "127.0.0.1",
            "KUBELOOP_SERVING_PORT": str(self.port),
            "KUBELOOP_SERVING_GRPC_PORT": "0",
            "KUBELOOP_SERVING_INTRA_OP_THREADS": "1",
            "KUBELOOP_SERVING_PAYLOAD_LOG_URI": str(self.directory / "payloads"),
            "KUBELOOP_SERVING_PAYLOAD_LOG_FLUSH_SECONDS": "1",
            "KUBELOOP_SERVING_TRACK": self.track,
        }
        with (self.directory / "serve.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kubeloop", "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        wait_for(self.ready, 120, what="kubeloop serve ready")
        return self

    def ready(self) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log_tail()
        return httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)

    def log_tail(self) -> str:
        path = self.directory / "serve.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-30:]) if path.exists() else ""


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
