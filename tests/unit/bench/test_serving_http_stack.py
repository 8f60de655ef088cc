"""The HTTP-stack benchmark's ratios (bench.serving_http_stack): granian over uvicorn, per point."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from bench.serving_http_stack import stack_ratios
from bench.serving_servers import cpu_seconds, tree_cpu_seconds
from tests.fixtures.cluster import wait_for

pytestmark = pytest.mark.unit


def point(server: str, rps: float, cpu: float, model: str = "mlp", concurrency: int = 64) -> dict[str, Any]:
    return {
        "model": model,
        "server": server,
        "concurrency": concurrency,
        "rps": rps,
        "cpu_us_per_request": cpu,
    }


def test_granian_over_uvicorn_for_the_floor_and_the_app_and_the_app_over_the_floor() -> None:
    results = [
        point("floor_uvicorn", 20000, 40),
        point("floor_granian_asgi", 18000, 50),
        point("floor_granian_rsgi", 25000, 30),
        point("kubeloop_uvicorn", 5000, 200),
        point("kubeloop_granian", 4000, 250),
        point("floor_uvicorn", 5000, 150, model="cnn"),
    ]
    mlp, cnn = sorted(stack_ratios(results), key=lambda row: row["model"], reverse=True)
    assert mlp == {
        "model": "mlp",
        "concurrency": 64,
        "granian_over_uvicorn_rps_floor_asgi": 0.9,
        "granian_over_uvicorn_cpu_floor_asgi": 1.25,
        "granian_over_uvicorn_rps_floor_rsgi": 1.25,
        "granian_over_uvicorn_cpu_floor_rsgi": 0.75,
        "granian_over_uvicorn_rps_kubeloop_asgi": 0.8,
        "granian_over_uvicorn_cpu_kubeloop_asgi": 1.25,
        "kubeloop_uvicorn_over_floor_uvicorn": 0.25,
    }
    assert cnn == {"model": "cnn", "concurrency": 64}, "a point missing a side has no ratio"


def test_cpu_of_a_process_counts_its_children() -> None:
    """granian's worker is a child of the process the benchmark started: its CPU must count."""
    burn = (
        "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\ntime.sleep(30)"
    )
    child = subprocess.Popen([sys.executable, "-c", burn])
    try:
        wait_for(lambda: cpu_seconds(child.pid) >= 0.45, 30, interval=0.1, what="the child's CPU")
        assert tree_cpu_seconds(os.getpid()) - cpu_seconds(os.getpid()) >= 0.45
    finally:
        child.kill()
        child.wait()
