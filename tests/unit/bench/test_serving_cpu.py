"""The in-process CPU harness (bench.serving_cpu): it answers every request and reports µs per request."""

from __future__ import annotations

import json

import pytest

from bench import serving_cpu

pytestmark = pytest.mark.unit


def test_the_harness_reports_cpu_per_request_of_answered_requests(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--server", "kubeloop_batching", "--concurrency", "4", "--requests", "64", "--repeats", "2"]
    assert serving_cpu.main([*argv, "--profile", "5"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)["results"]["mlp/kubeloop_batching/c4"]
    assert result["requests"] == 64
    assert len(result["samples"]) == 2 and result["cpu_us_per_request"] > 0
    assert "function calls" in captured.err, "the profile goes to stderr"


@pytest.mark.parametrize("loop", sorted(serving_cpu.LOOPS))
def test_the_harness_runs_on_either_event_loop(loop: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--server", "kubeloop", "--concurrency", "2", "--requests", "16", "--repeats", "1"]
    assert serving_cpu.main([*argv, "--loop", loop]) == 0
    assert json.loads(capsys.readouterr().out)["results"]["mlp/kubeloop/c2"]["requests"] == 16
