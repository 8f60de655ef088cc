"""The serving benchmark's ratios and goals (bench.serving_report): best variant per side, floors."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench.serving_report import goals, ratio, ratios

pytestmark = pytest.mark.unit


def point(
    model: str, server: str, concurrency: int, rps: float, p99: float, cpu: float = 100.0
) -> dict[str, Any]:
    requests = int(rps)
    return {
        "model": model,
        "server": server,
        "concurrency": concurrency,
        "rps": rps,
        "p50_ms": p99 / 2 if requests else math.nan,
        "p99_ms": p99 if requests else math.nan,
        "cpu_us_per_request": cpu,
        "requests": requests,
    }


RESULTS = [
    point("cnn", "kubeloop", 64, 600, 120, cpu=1500),
    point("cnn", "kubeloop_batching", 64, 700, 110, cpu=1400),
    point("cnn", "kserve", 64, 300, 400),
    point("cnn", "mlserver", 64, 200, 90),
    point("cnn", "mlserver_batching", 64, 400, 300),
    point("cnn", "http_floor", 64, 20000, 10),
    point("mlp", "kubeloop", 64, 8000, 20),
    point("mlp", "http_floor", 64, 10000, 15),
]
FLOORS = {"cnn": {"batch1_rows_per_s": 1000.0, "batch32_rows_per_s": 1400.0}}


def test_each_side_is_represented_by_its_best_variant_by_rps() -> None:
    cnn = ratios(RESULTS, FLOORS)[0]
    assert cnn["kubeloop"] == "kubeloop_batching"
    assert cnn["over_mlserver"]["against"] == "mlserver_batching"
    assert cnn["over_mlserver"]["rps_ratio"] == 1.75
    assert cnn["over_kserve"]["rps_ratio"] == 2.333
    assert cnn["over_onnxruntime_in_process"] == {"batch1": 0.7, "batch32": 0.5}
    assert cnn["lowest_p99_ms"] == {"kubeloop": 110, "kserve": 400, "mlserver": 90, "http_floor": 10}


def test_goals_follow_the_issue_targets() -> None:
    verdict = goals(ratios(RESULTS, FLOORS))
    assert verdict == {
        "cnn c=64: >=2x kserve rps": True,
        "cnn c=64: >=2x mlserver rps": False,
        "cnn c=64: >=0.7x onnxruntime in-process (batch 1)": True,
        "p99 no worse than kserve anywhere (each side's lowest)": True,
        "p99 no worse than mlserver anywhere (each side's lowest)": False,
        "mlp c=64: >=0.7x the HTTP floor": True,
    }


def test_a_side_that_answered_nothing_gives_no_ratio() -> None:
    assert ratio(5.0, 0.0) is None
    assert ratio(math.nan, 2.0) is None
    silent = [point("mlp", "kubeloop", 1, 500, 3), point("mlp", "kserve", 1, 0, 0)]
    row = ratios(silent, {})[0]
    assert row["over_kserve"]["rps_ratio"] is None
    assert "kserve" not in row["lowest_p99_ms"]
