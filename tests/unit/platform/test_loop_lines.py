"""The demo's summary lines, fed what the operator writes to status."""

from __future__ import annotations

import pytest

from kubeloop.api.training import TrainingJobStatus
from kubeloop_operator.rollout.checks import result
from tests.e2e.loop import checks_line, metrics_line

pytestmark = pytest.mark.unit


def test_checks_line_reads_each_verdict_from_the_wire() -> None:
    checks = [
        result("errorRate", 0.0, 0.01).wire(),
        result("p99Seconds", 2.5, 2.0).wire(),
        result("outputPsi", 0.0171234, 0.2).wire(),
        result("p99Ratio", None, 1.5).wire(),  # not measurable: value and verdict left out
    ]
    assert checks_line(checks) == (
        "errorRate 0 (max 0.01) passed, p99Seconds 2.5 (max 2) FAILED, "
        "outputPsi 0.01712 (max 0.2) passed, p99Ratio - (max 1.5) not measured"
    )


def test_metrics_line_sorts_by_name() -> None:
    status = TrainingJobStatus(metrics={"val_f1": 0.46896551, "test_accuracy": 0.73125}).wire()
    assert metrics_line(status["metrics"]) == "test_accuracy 0.7312, val_f1 0.469"
