"""The examples in manifests/examples apply cleanly and become Ready/Running."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cluster import OperatorProcess, wait_for

pytestmark = pytest.mark.cluster
EXAMPLES = Path(__file__).resolve().parents[2] / "manifests/examples"


def condition(obj: dict[str, Any] | None, type_: str) -> str | None:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == type_), None)


def test_examples_become_ready(operator: OperatorProcess, namespace: str) -> None:
    kubectl = operator.cluster.kubectl
    kubectl.run("apply", "-n", namespace, "-f", str(EXAMPLES))
    wait_for(
        lambda: condition(kubectl.get("modeldeployment", "churn", namespace), "Ready") == "True",
        90,
        what="churn Ready",
    )
    for name in ("churn-mirror", "churn-ab"):
        wait_for(
            lambda n=name: condition(kubectl.get("modeldeployment", n, namespace), "Ready") == "True",  # type: ignore[misc]
            90,
            what=f"{name} Ready",
        )
    wait_for(
        lambda: condition(kubectl.get("driftmonitor", "churn-drift", namespace), "Ready") == "True",
        90,
        what="drift monitor Ready",
    )
    for name in ("churn-gbm", "churn-mlp-ddp"):
        wait_for(
            lambda n=name: (
                ((kubectl.get("trainingjob", n, namespace) or {}).get("status") or {}).get("phase")
                == "Running"
            ),  # type: ignore[misc]
            90,
            what=f"{name} Running",
        )
    listing = kubectl.run("get", "kubeloop", "-n", namespace).stdout
    for name in (
        "churn-gbm",
        "churn-mlp-ddp",
        "modeldeployment.kubeloop.io/churn",
        "driftmonitor.kubeloop.io/churn-drift",
    ):
        assert name in listing
