"""Shared fixtures: ONNX models built with onnx.helper, servers in a thread or a subprocess."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pyarrow as pa
import pytest
from onnx import TensorProto, helper, numpy_helper
from prometheus_client.parser import text_string_to_metric_families

from kubeloop_drift.payload_log import payload_window
from kubeloop_serving.server import ServingServer
from kubeloop_serving.settings import ServingSettings
from tests.fixtures.serve import ServerProcess

OPSET = 17
TABULAR_FEATURES = ("age", "income", "score", "tenure")
TABULAR_WEIGHTS = np.array(
    [[0.5, -1.0, 0.25], [1.5, 0.0, -0.5], [-0.75, 2.0, 1.0], [0.1, 0.2, 0.3]], np.float32
)
TABULAR_BIAS = np.array([0.1, -0.2, 0.3], np.float32)
GATHER_TABLE = np.arange(40, dtype=np.float32).reshape(10, 4)

#: OIP datatype -> ONNX element type, for the identity model.
ONNX_TYPES = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}


def _save(graph: onnx.GraphProto, path: Path, metadata: dict[str, str] | None = None) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tabular_model(path: Path, *, feature_names: bool = True, batch: str | int = "N") -> Path:
    """x [N, 4] FP32 -> scores [N, 3] = x @ W + b, label [N] INT64 = argmax(scores)."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["scores"]),
            helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0),
        ],
        "tabular",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, 3]),
            helper.make_tensor_value_info("label", TensorProto.INT64, [batch]),
        ],
        [numpy_helper.from_array(TABULAR_WEIGHTS, "W"), numpy_helper.from_array(TABULAR_BIAS, "b")],
    )
    metadata = {"kubeloop.feature_names": json.dumps(list(TABULAR_FEATURES))} if feature_names else None
    return _save(graph, path, metadata)


def tabular_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the tabular model computes, in NumPy."""
    scores = x.astype(np.float32) @ TABULAR_WEIGHTS + TABULAR_BIAS
    return scores, scores.argmax(axis=1)


def identity_model(path: Path) -> Path:
    """One Identity per OIP datatype: ``in_{TYPE}`` [N, 2] -> ``out_{TYPE}`` [N, 2]."""
    nodes, inputs, outputs = [], [], []
    for datatype, elem_type in ONNX_TYPES.items():
        nodes.append(helper.make_node("Identity", [f"in_{datatype}"], [f"out_{datatype}"]))
        inputs.append(helper.make_tensor_value_info(f"in_{datatype}", elem_type, ["N", 2]))
        outputs.append(helper.make_tensor_value_info(f"out_{datatype}", elem_type, ["N", 2]))
    return _save(helper.make_graph(nodes, "identity", inputs, outputs), path)


def image_model(path: Path) -> Path:
    """image [N, 2, 3, 3] FP32 -> pooled [N, 2] (mean over H, W): a rank-4 input."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["pooled"], axes=[2, 3], keepdims=0)],
        "image",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 2, 3, 3])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["N", 2])],
    )
    return _save(graph, path)


def slow_gather_model(path: Path, work: int = 768) -> Path:
    """x [N, 4] FP32, idx [N] INT64 -> y [N, 4] = table[idx] + x, with ~``work``^3 flops of padding.

    Each call multiplies two ``work``x``work`` matrices derived from the input and adds
    zero times the result, so calls take a few milliseconds (letting concurrent requests
    queue up and merge) while the numbers stay exact. Out-of-range ``idx`` passes
    validation but fails inside onnxruntime.
    """
    rng = np.random.default_rng(0)
    big = rng.standard_normal((work, work)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "idx"], ["rows"], axis=0),
            helper.make_node("Add", ["rows", "x"], ["sum"]),
            helper.make_node("ReduceSum", ["x"], ["total"], keepdims=1),
            helper.make_node("Mul", ["big", "total"], ["scaled"]),
            helper.make_node("MatMul", ["scaled", "big"], ["product"]),
            helper.make_node("ReduceMax", ["product"], ["peak"], keepdims=0),
            helper.make_node("Mul", ["peak", "zero"], ["nothing"]),
            helper.make_node("Add", ["sum", "nothing"], ["y"]),
        ],
        "slow_gather",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("idx", TensorProto.INT64, ["N"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [
            numpy_helper.from_array(GATHER_TABLE, "table"),
            numpy_helper.from_array(big, "big"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ],
    )
    return _save(graph, path)


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 60.0) -> None:
    """Poll ``condition`` until true; fail the test (not a timing assertion) if it never becomes true."""
    give_up = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > give_up:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0.0 when absent)."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


@dataclass
class RunningServer:
    """A live server and an HTTP client pointed at it."""

    url: str
    client: httpx.Client
    server: ServingServer | None = None

    def infer(self, model: str, document: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return self.client.post(f"/v2/models/{model}/infer", json=document, **kwargs)

    def metric(self, name: str, **labels: str) -> float:
        return metric_value(self.client.get("/metrics").text, name, **labels)


def is_ready(client: httpx.Client) -> bool:
    try:
        return client.get("/v2/health/ready").status_code == 200
    except httpx.TransportError:
        return False


@contextlib.contextmanager
def serve_in_thread(model_uri: Path | str, **overrides: Any) -> Iterator[RunningServer]:
    """A real uvicorn server on 127.0.0.1 (free port) in a thread, ready (model warmed up)."""
    overrides.setdefault("grpc_port", 0)  # no gRPC unless a test asks: the default port is shared
    settings = ServingSettings(model_uri=str(model_uri), host="127.0.0.1", port=0, **overrides)
    server = ServingServer(settings)
    thread = threading.Thread(target=server.run, name="serving-under-test", daemon=True)
    thread.start()
    wait_for(lambda: server.uvicorn.started or not thread.is_alive(), "uvicorn to start")
    assert server.port is not None, "uvicorn did not start"
    url = f"http://127.0.0.1:{server.port}"
    with httpx.Client(base_url=url, timeout=30) as client:
        wait_for(lambda: is_ready(client) or server.fatal is not None, "the model to be ready")
        try:
            yield RunningServer(url, client, server)
        finally:
            server.request_stop()
            thread.join(60)


@dataclass(frozen=True)
class RawResponse:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def post_all_at_once(url: str, path: str, documents: list[Any]) -> list[RawResponse]:
    """POST each document on its own connection, all written before any is read, from another process."""
    job = json.dumps({"url": url, "path": path, "documents": documents})
    script = Path(__file__).with_name("raw_client.py")
    done = subprocess.run(
        [sys.executable, str(script)], input=job, capture_output=True, text=True, check=True
    )
    return [RawResponse(status, body.encode()) for status, body in json.loads(done.stdout)]


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers as subprocesses; any still running at the end are killed."""
    started: list[ServerProcess] = []

    def start(**settings: str) -> ServerProcess:
        process = ServerProcess(tmp_path / f"server-{len(started)}.log", **settings)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture(scope="module")
def module_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ServerProcess]]:
    """As ``server_process``, for servers a whole module shares."""
    started: list[ServerProcess] = []
    logs = tmp_path_factory.mktemp("server-logs")

    def start(**settings: str) -> ServerProcess:
        started.append(ServerProcess(logs / f"server-{len(started)}.log", **settings))
        return started[-1]

    yield start
    for process in started:
        process.kill()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tabular_path(model_dir: Path) -> Path:
    return tabular_model(model_dir / "tabular.onnx")


@pytest.fixture(scope="session")
def identity_path(model_dir: Path) -> Path:
    return identity_model(model_dir / "identity.onnx")


@pytest.fixture(scope="session")
def slow_gather_path(model_dir: Path) -> Path:
    return slow_gather_model(model_dir / "slow_gather.onnx")


@pytest.fixture(scope="module")
def tabular_server(tabular_path: Path) -> Iterator[RunningServer]:
    """One shared server for the tabular model (read-only tests)."""
    with serve_in_thread(tabular_path, model_name="tabular") as running:
        yield running


def logged_rows(sink_uri: str, model: str, last_rows: int = 10**9) -> pa.Table:
    """The payload log as the drift check reads it (the one reader), oldest row first."""
    window = payload_window(sink_uri, model, last_rows=last_rows)
    return window.read(window.schema.names).sort_by("_timestamp")


class GatedHandler(http.server.SimpleHTTPRequestHandler):
    gate = threading.Event()

    def do_GET(self) -> None:
        self.gate.wait(60)
        super().do_GET()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def gated_model_url(tabular_path: Path) -> Iterator[tuple[str, threading.Event]]:
    """The tabular model over HTTP, held back until the test opens the gate."""
    gate = threading.Event()
    handler = type("Handler", (GatedHandler,), {"gate": gate})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(tabular_path.parent))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{tabular_path.name}", gate
    gate.set()
    server.shutdown()
    server.server_close()
