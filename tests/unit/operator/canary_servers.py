"""Real inference servers and a real metrics exporter for canary analysis tests, and a Prometheus that
scrapes them with the label the cluster's discovery gives (namespace)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.ports import free_port
from tests.fixtures.prometheus import Prometheus
from tests.fixtures.serve import ServerProcess

FLAT = np.array([-1, 4], np.int64)


def reshape_model(path: Path, work: int = 0) -> Path:
    """x [N, 4] FP32, shape [2] INT64 -> y [N, 4] = x, by way of reshaping x to `shape`: a `shape` of
    another size passes the server's validation and fails inside onnxruntime (FAIL: HTTP 500). `work` > 0
    adds two work x work matrix products per call, multiplied by zero: slower, same answers."""
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["reshaped"]),
        helper.make_node("Reshape", ["reshaped", "flat"], ["y" if not work else "same"]),
    ]
    constants = [numpy_helper.from_array(FLAT, "flat")]
    if work:
        big = np.random.default_rng(0).standard_normal((work, work)).astype(np.float32)
        nodes += [
            helper.make_node("ReduceSum", ["x"], ["total"], keepdims=1),
            helper.make_node("Mul", ["big", "total"], ["scaled"]),
            helper.make_node("MatMul", ["scaled", "big"], ["product"]),
            helper.make_node("MatMul", ["product", "big"], ["product2"]),
            helper.make_node("ReduceMax", ["product2"], ["peak"], keepdims=0),
            helper.make_node("Mul", ["peak", "zero"], ["nothing"]),
            helper.make_node("Add", ["same", "nothing"], ["y"]),
        ]
        constants += [
            numpy_helper.from_array(big, "big"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ]
    graph = helper.make_graph(
        nodes,
        "reshape",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("shape", TensorProto.INT64, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def reshape_request(ok: bool) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [0.5, 1.0, 1.5, 2.0]},
            {"name": "shape", "datatype": "INT64", "shape": [2], "data": [2, 2] if ok else [3, 3]},
        ]
    }


class TrackServer(ServerProcess):
    """A server of one track of a ModelDeployment, on an ONNX file, one request a batch."""

    def __init__(self, directory: Path, model_path: Path, model: str, track: str, version: str) -> None:
        self.model, self.track = model, track
        super().__init__(
            directory / f"serve-{track}.log",
            model_uri=str(model_path),
            model_name=model,
            model_version=version,
            track=track,
            intra_op_threads="1",
            max_batch_size="1",
        )

    def send(self, client: httpx.Client, good: int, bad: int = 0) -> None:
        """`good` answered requests, then `bad` ones that fail inside the model (HTTP 500)."""
        for i in range(good + bad):
            answer = client.post(f"{self.url}/v2/models/{self.model}/infer", json=reshape_request(i < good))
            assert answer.status_code == (200 if i < good else 500), answer.text

    def histogram(self) -> dict[float, float]:
        """Its own request-duration histogram (cumulative count per upper bound), from /metrics."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        out: dict[float, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "kubeloop_serving_request_duration_seconds_bucket":
                    le = float(sample.labels["le"])
                    out[le] = out.get(le, 0.0) + sample.value
        return out

    def exports(self, metric: str) -> bool:
        return metric in httpx.get(f"{self.url}/metrics", timeout=5).text


def quantile_bucket(before: dict[float, float], after: dict[float, float], q: float) -> tuple[float, float]:
    """The (lower, upper] bucket that holds quantile `q` of the observations between two snapshots."""
    bounds = sorted(after)
    delta = [after[b] - before.get(b, 0.0) for b in bounds]
    rank = q * delta[-1]
    lower = 0.0
    for bound, count in zip(bounds, delta, strict=True):
        if count >= rank:
            return lower, bound
        lower = bound
    return lower, bounds[-1]


class OutputExporter:
    """A real /metrics endpoint (prometheus_client's HTTP server) with the servers' output metrics, for
    models whose counts the test sets: predicted classes, and a prediction histogram."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["model", "version", "track"]
        self.classes = Counter(
            "kubeloop_serving_predicted_class",
            "Predicted classes.",
            [*labels, "class"],
            registry=self.registry,
        )
        self.predictions = Histogram(
            "kubeloop_serving_prediction",
            "Predicted values.",
            labels,
            buckets=(0.25, 0.5, 0.75, 1.0),
            registry=self.registry,
        )
        self.port = free_port()
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)

    def stop(self) -> None:
        self.server.shutdown()


def scrape(namespace: str, targets: dict[str, tuple[int, dict[str, str]]]) -> dict[str, dict[str, Any]]:
    """Prometheus scrape configs: one job per target, its labels as the cluster's discovery would add."""
    return {
        job: {
            "static_configs": [
                {"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": namespace, **labels}}
            ]
        }
        for job, (port, labels) in targets.items()
    }


def scraped_total(prometheus: Prometheus, selector: str) -> float:
    series = prometheus.series(f"sum(kubeloop_serving_requests_total{{{selector}}})")
    return float(series[0]["value"][1]) if series else 0.0
