"""The chart's MLflow command line, run for real (the mlflow the project installs): the flags exist,
SQLite on the volume works, and the Host names the operator and port-forwards use are accepted."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.cluster import wait_for
from tests.fixtures.mlflow_server import mlflow_executable
from tests.fixtures.ports import free_port
from tests.unit.chart.helm import one, operator_env, render

pytestmark = [pytest.mark.unit, pytest.mark.mlflow]


@pytest.fixture
def chart_mlflow(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """`mlflow <the chart's args>`, with the volume at tmp_path and the port moved to a free one."""
    port = free_port()
    manifests = render({"mlflow": {"enabled": True, "port": port, "workers": 1}}, namespace="ml")
    container = one(manifests, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["mlflow"]
    args = [
        a.replace("/mlflow/", f"{tmp_path}/").replace("--host=0.0.0.0", "--host=127.0.0.1")
        for a in container["args"]
    ]
    log = (tmp_path / "mlflow.log").open("ab")
    process = subprocess.Popen(
        [mlflow_executable(), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    try:
        tracking = urllib.parse.urlparse(operator_env(manifests)["KUBELOOP_OPERATOR_MLFLOW_TRACKING_URI"])
        yield f"{tracking.hostname}:{tracking.port}", port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def test_chart_mlflow_args_run_and_accept_the_service_name(
    chart_mlflow: tuple[str, int], tmp_path: Path
) -> None:
    service_host, port = chart_mlflow
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        return httpx.get(f"{base}/health", timeout=2).status_code == 200

    wait_for(healthy, 120, interval=0.5, what=f"mlflow /health\n{(tmp_path / 'mlflow.log').read_text()}")
    create = f"{base}/api/2.0/mlflow/experiments/create"
    answer = httpx.post(create, json={"name": "chart"}, headers={"Host": service_host}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert (tmp_path / "mlflow.db").exists(), "SQLite on the volume"
    search = f"{base}/api/2.0/mlflow/experiments/search?max_results=5"
    assert httpx.get(search, headers={"Host": f"localhost:{port}"}, timeout=30).status_code == 200, (
        "port-forward"
    )
    assert httpx.get(search, headers={"Host": "evil.example.com"}, timeout=30).status_code == 403
