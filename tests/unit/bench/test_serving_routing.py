"""The routing benchmark's summary and ratios (bench.serving_routing), fed runs as its two load
generators print them: REST (bench.serving_loadgen: HTTP statuses, connection errors) and gRPC
(bench.serving_grpc_loadgen: status code names)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from bench.serving_routing import PATHS, report, summarise

pytestmark = pytest.mark.unit


def rest_run(rps: float, p50: float, failed: int = 0, errors: int = 0) -> dict[str, Any]:
    statuses = {"200": int(rps)} | ({"503": failed} if failed else {})
    return {
        "requests": int(rps),
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": 4 * p50,
        "statuses": statuses,
        "errors": errors,
    }


def grpc_run(rps: float, p50: float, failed: int = 0) -> dict[str, Any]:
    statuses = {"OK": int(rps)} | ({"UNAVAILABLE": failed} if failed else {})
    return {"requests": int(rps), "rps": rps, "p50_ms": p50, "p99_ms": 4 * p50, "statuses": statuses}


def test_failures_of_both_protocols_and_connection_errors_are_counted() -> None:
    assert summarise([rest_run(100, 1.0, failed=2, errors=3), rest_run(120, 2.0)])["failed"] == 5
    grpc = summarise([grpc_run(50, 1.0, failed=1), grpc_run(70, 3.0), grpc_run(60, 2.0)])
    assert grpc == {"rps": 60.0, "p50_ms": 2.0, "p99_ms": 8.0, "rounds": 3, "requests": 180, "failed": 1}


def test_routed_over_direct_for_rest_and_grpc() -> None:
    args = argparse.Namespace(concurrency=[1], server_cpus="0", loadgen_cpus="1", duration=1.0, rounds=1)
    rates = {"direct": 1000, "routed": 500, "no_shadow": 900, "with_shadow": 900, "grpc_direct": 400}
    rates["grpc_routed"] = 300
    results = [
        {
            "path": path,
            "concurrency": 1,
            **summarise([(grpc_run if "grpc" in path else rest_run)(rate, 1e3 / rate)]),
        }
        for path, rate in rates.items()
    ]
    assert {r["path"] for r in results} == set(PATHS)
    done = report(args, results, computed=0, fallbacks=0, shadow={})
    assert done["ratios_routed_over_direct"][0]["rps_ratio"] == 0.5
    assert done["ratios_grpc_routed_over_direct"][0]["rps_ratio"] == 0.75
    assert done["ratios_grpc_routed_over_direct"][0]["added_p50_ms"] == pytest.approx(0.833, abs=1e-3)
