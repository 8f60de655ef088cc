"""`kubeloop load` (the demo's in-cluster load pod) against a real server: every request counted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit.serving.conftest import RunningServer, wait_for

pytestmark = pytest.mark.unit

GOOD: dict[str, Any] = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
BAD: dict[str, Any] = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3]}]}


def load(server: RunningServer, body: dict[str, Any], tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    (tmp_path / "body.json").write_text(json.dumps(body))
    command = [sys.executable, "-m", "kubeloop", "load", f"{server.url}/v2/models/tabular/infer"]
    command += [f"--body={tmp_path / 'body.json'}", "--rate=200", "--connections=4", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def served(server: RunningServer) -> float:
    return sum(server.metric("kubeloop_serving_requests_total", code=code) for code in ("200", "400"))


def summary_after(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def test_stops_when_the_stop_file_appears_and_counts_every_request(
    tabular_server: RunningServer, tmp_path: Path
) -> None:
    before = served(tabular_server)
    process = load(tabular_server, GOOD, tmp_path, f"--stop-file={tmp_path / 'stop'}")
    wait_for(lambda: served(tabular_server) - before >= 50, "50 requests served")
    (tmp_path / "stop").touch()
    result = summary_after(process)
    assert result["failed"] == 0, result
    assert result["sent"] == result["answered"] == served(tabular_server) - before
    assert result["model_versions_answering"] == {"1": result["answered"]}


def test_refused_requests_are_failures_with_the_answer_named(
    tabular_server: RunningServer, tmp_path: Path
) -> None:
    before = served(tabular_server)
    process = load(tabular_server, BAD, tmp_path)
    wait_for(lambda: served(tabular_server) - before >= 10, "10 requests refused")
    process.send_signal(signal.SIGTERM)
    result = summary_after(process)
    assert result["answered"] == 0
    assert result["failed"] == result["sent"] >= 10
    errors = result["errors"]
    assert isinstance(errors, dict) and len(errors) == 1, errors
    assert next(iter(errors)).startswith("HTTP 400"), errors
