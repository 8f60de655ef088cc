"""The trainer image in a real pod, at its first MLflow call: Feast's MLflow header plugin (the image
installs Feast) stays unloaded, Prometheus is left in single-process mode, and MLflow's telemetry
is off (the cluster's usage data does not leave it).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.loop import API
from tests.e2e.platform import Platform
from tests.e2e.test_loop import record

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
NAME = "first-mlflow-call"
PROBE = """
import json, os, sys, time
from importlib.metadata import entry_points
start = time.monotonic()
from kubeloop_trainer.tracking import Tracker
imported = time.monotonic()
Tracker(os.environ["MLFLOW_TRACKING_URI"], os.environ["MLFLOW_EXPERIMENT_NAME"]).start_run("probe", {})
called = time.monotonic()
from mlflow.telemetry.utils import is_telemetry_disabled
plugins = [found.module for found in entry_points(group="mlflow.request_header_provider")]
print("probe " + json.dumps({
    "header_plugins_installed": plugins,
    "feast_modules": sorted(m for m in sys.modules if m.split(".")[0] == "feast"),
    "prometheus_multiprocess_env": sorted(k for k in os.environ if k.startswith("PROMETHEUS_MULTIPROC")),
    "telemetry_disabled": is_telemetry_disabled(),
    "import_seconds": round(imported - start, 2),
    "first_call_seconds": round(called - imported, 2),
}), flush=True)
"""


def finished(status: dict[str, Any]) -> bool:
    return status.get("phase") in {"Succeeded", "Failed"}


def test_the_trainers_first_mlflow_call_loads_no_feast_and_sends_no_telemetry(
    platform: Platform, e2e_namespace: str
) -> None:
    job = {
        "apiVersion": API,
        "kind": "TrainingJob",
        "metadata": {"name": NAME},
        "spec": {"command": ["python", "-c", PROBE]},
    }
    platform.apply(job, e2e_namespace)
    status = platform.wait_status("trainingjob", NAME, e2e_namespace, finished, 600, f"{NAME} finished")[
        "status"
    ]
    logs = platform.logs(f"job-name={NAME}", e2e_namespace)
    assert status["phase"] == "Succeeded", f"{status.get('conditions')}\n{logs}"
    lines = [line.split("probe ", 1)[1] for line in logs.splitlines() if "probe {" in line]
    assert lines, logs
    seen = json.loads(lines[-1])
    record("trainer_first_mlflow_call", seen)
    assert "feast.infra.data_sources.mlflow.auth" in seen["header_plugins_installed"]
    assert seen["feast_modules"] == []
    assert seen["prometheus_multiprocess_env"] == []
    assert seen["telemetry_disabled"] is True
