"""MLflow loads every installed request-header plugin at a process's first REST call; Feast's (in
the trainer's ``data`` extra) would import all of Feast there and set PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pytest

from kubeloop.mlflow_client import HEADER_PROVIDERS, UNUSED_PROVIDERS, used_providers

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]


def test_other_header_plugins_are_kept() -> None:
    feast = EntryPoint(
        "feast", "feast.infra.data_sources.mlflow.auth:FeastMLflowHeaderProvider", HEADER_PROVIDERS
    )
    other = EntryPoint("other", "other_package.headers:Provider", HEADER_PROVIDERS)
    assert used_providers([feast, other]) == [other]


def test_the_trainers_first_mlflow_call_imports_no_feast(mlflow_server: Any) -> None:
    installed = [found.module for found in entry_points(group=HEADER_PROVIDERS)]
    assert set(installed) & UNUSED_PROVIDERS, f"Feast's header plugin is not installed here: {installed}"
    probe = (
        "import json, os, sys\n"
        "import mlflow.utils.plugins\n"
        "before, every = dict(os.environ), mlflow.utils.plugins.get_entry_points\n"
        "from kubeloop_trainer.tracking import Tracker\n"
        f"tracker = Tracker({mlflow_server.tracking_uri!r}, 'header-plugins')\n"
        "tracker.start_run('probe', {})\n"
        "from mlflow.tracking.request_header.registry import _request_header_provider_registry\n"
        "print(json.dumps({\n"
        "    'feast': sorted(m for m in sys.modules if m.split('.')[0] == 'feast'),\n"
        "    'environment': sorted(k for k, _ in set(os.environ.items()) ^ set(before.items())),\n"
        "    'providers': [type(p).__name__ for p in _request_header_provider_registry],\n"
        "    'restored': mlflow.utils.plugins.get_entry_points is every,\n"
        "}), flush=True)\n"
        "os._exit(0)\n"
    )
    env = {"PYTHONPATH": f"{REPO}:{REPO / 'trainer'}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["feast"] == []
    assert [name for name in seen["environment"] if not name.startswith("_MLFLOW_")] == []  # MLflow's own
    assert seen["providers"] == ["DatabricksRequestHeaderProvider", "DefaultRequestHeaderProvider"]
    assert seen["restored"] is True
