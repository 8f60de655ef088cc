"""The gRPC benchmark's floor server (bench.serving_floors grpc), started as the benchmark starts it
and called as its load generators call it, and its ratios (bench.serving_grpc), fed points as the
benchmark makes them."""

from __future__ import annotations

import math
import sys
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest

from bench.serving_grpc import COMPARISONS, grpc_request, ratios, servers
from bench.serving_grpc_loadgen import MODEL_INFER
from bench.serving_models import request_body, tabular_mlp
from bench.serving_servers import cpu_per_call, cpu_seconds, running_servers
from kubeloop_serving.oip_grpc import grpc_predict_v2_pb2 as pb

pytestmark = pytest.mark.unit


def test_the_floor_answers_rest_and_grpc_from_one_process(tmp_path: Path) -> None:
    model = tabular_mlp(tmp_path)
    (floor,) = servers(model, 1, Path(sys.executable), ["floor"])
    pids: dict[str, int] = {}
    with running_servers([floor.spec], "0", Path.cwd(), tmp_path, pids) as urls:
        request = urllib.request.Request(
            f"{urls['floor']}/v2/models/{model.name}/infer", data=request_body(model), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        with grpc.insecure_channel(f"127.0.0.1:{floor.grpc_port}") as channel:
            raw = channel.unary_unary(MODEL_INFER)(grpc_request(model), timeout=10)
        assert cpu_seconds(pids["floor"]) > 0
    answer = pb.ModelInferResponse.FromString(raw)
    assert [list(output.shape) for output in answer.outputs] == [[1, 10]]
    assert [len(contents) for contents in answer.raw_output_contents] == [40]  # ten FP32 values


def point(server: str, protocol: str, rps: float, cpu_us: float, model: str = "mlp") -> dict[str, Any]:
    latency = 1e3 / rps
    return {
        "model": model,
        "server": server,
        "protocol": protocol,
        "concurrency": 8,
        "rps": rps,
        "p50_ms": latency,
        "p99_ms": 2 * latency,
        "cpu_us_per_request": cpu_us,
    }


def test_ratios_put_kubeloop_grpc_over_the_floor_and_the_floor_grpc_over_its_rest() -> None:
    results = [
        point("kubeloop", "grpc", 2000, 480),
        point("kubeloop", "rest", 8000, 120),
        point("floor", "grpc", 5000, 190),
        point("floor", "rest", 25000, 38),
    ]
    done = ratios(results)
    assert set(done) == set(COMPARISONS)
    (over_floor,) = done["kubeloop_grpc_over_floor_grpc"]
    assert over_floor == {
        "model": "mlp",
        "concurrency": 8,
        "rps_ratio": 0.4,
        "p50_ratio": 2.5,
        "p99_ratio": 2.5,
        "cpu_per_request_ratio": 2.53,
    }
    assert done["floor_grpc_over_floor_rest"][0]["rps_ratio"] == 0.2
    assert done["kubeloop_grpc_over_kubeloop_rest"][0]["cpu_per_request_ratio"] == 4.0
    assert done["kubeloop_grpc_over_kserve_grpc"] == []  # KServe not measured
    assert done["kserve_grpc_over_kserve_rest"] == []


def test_cpu_per_call_counts_the_warm_up_at_the_measured_rate() -> None:
    assert cpu_per_call(1.2, requests=5000, warmup_s=1.0, duration_s=5.0) == 200.0  # 1.2 s / 6,000 calls
    assert math.isnan(cpu_per_call(0.3, requests=0, warmup_s=1.0, duration_s=5.0))
