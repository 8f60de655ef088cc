"""The whole path: the server's payload logger writes predictions with request ids and attributes, labels
land as Parquet, ``kubeloop drift check`` measures performance, the operator turns its termination
message into status.performance, a PerformanceDegraded condition and the kubeloop_monitor_* gauges."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fairlearn.metrics import demographic_parity_difference
from prometheus_client import REGISTRY
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from kubeloop.api.drift import DriftMonitorStatus
from kubeloop.api.summaries import DriftSummary, decode
from kubeloop_drift.cli import main
from kubeloop_operator.metrics import ObjectSeries, record_performance
from kubeloop_operator.status.drift import apply_check
from kubeloop_serving.payload import PayloadLogger
from kubeloop_serving.payload_table import FeatureNaming, PayloadRecord

pytestmark = pytest.mark.unit
ROWS = 600
HOUR_MS = 3_600_000


def serve_predictions(sink: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Requests of 3 rows each as the server logs them: half 3 h old (matured), half just now."""
    logger = PayloadLogger(
        str(sink),
        "churn",
        FeatureNaming("x", ("age",)),
        queue_size=1000,
        flush_rows=10**6,
        flush_seconds=600,
        on_written=lambda _: None,
        on_dropped=lambda _: None,
    )
    logger.start()
    now = time.time_ns() // 1_000_000
    age = rng.normal(40, 10, ROWS)
    probability = rng.uniform(size=ROWS)
    predicted = (probability >= 0.5).astype(np.int64)
    sex = rng.choice(np.array(["f", "m", "x"], object), ROWS, p=[0.49, 0.49, 0.02])
    stamps = np.where(np.arange(ROWS) < ROWS // 2, now - 3 * HOUR_MS, now)
    for start in range(0, ROWS, 3):
        part = slice(start, start + 3)
        logger.submit(
            PayloadRecord(
                int(stamps[start]), f"q{start}", "1", {"x": age[part, None].astype(np.float32)},
                {"label": predicted[part], "probabilities": np.c_[1 - probability[part], probability[part]]},
                attributes={"sex": tuple(sex[part])},
            )
        )  # fmt: skip
    logger.close(timeout=30)
    truth = (rng.uniform(size=ROWS) < probability).astype(np.int64)
    return {"predicted": predicted, "probability": probability, "sex": sex, "truth": truth}


def write_labels(path: Path, served: dict[str, np.ndarray], labelled: np.ndarray) -> None:
    path.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "request_id": [f"q{i - i % 3}" for i in labelled],
                "row": pa.array(labelled % 3, pa.int32()),
                "label": pa.array(served["truth"][labelled], pa.int64()),
            }
        ),
        path / "batch-1.parquet",
    )


def test_performance_from_the_payload_log_to_status_and_gauges(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    served = serve_predictions(tmp_path / "payloads", rng)
    matured = np.arange(ROWS // 2)
    labelled = np.sort(np.r_[rng.permutation(matured)[:240], ROWS - 1])  # 80% of matured + one early label
    write_labels(tmp_path / "labels", served, labelled)
    config = {
        "performance": {
            "labelsUri": str(tmp_path / "labels"),
            "maturity": "1h",
            "task": "binary",
            "score": "probabilities.1",
            "metrics": [{"metric": "accuracy", "threshold": 0.99}, {"metric": "f1"}, {"metric": "roc_auc"}],
            "sensitiveAttributes": ["sex"],
            "fairness": [{"metric": "demographic_parity_difference", "max": 0.5}],
            "minGroupSize": 30,
            "bootstrapSamples": 50,
        }
    }
    pq.write_table(pa.table({"age": rng.normal(40, 10, 1000)}), tmp_path / "ref.parquet")
    code = run_check(tmp_path, config)
    assert code == 0
    result = json.loads((tmp_path / "out" / "result.json").read_text())["performance"]
    assert (result["matured"], result["labelled"], result["early_labels"]) == (300, 240, 1)
    assert result["label_coverage"] == pytest.approx(0.8)
    used = labelled[labelled < ROWS // 2]
    truth, predicted = served["truth"][used], served["predicted"][used]
    realized = {m["metric"]: m for m in result["metrics"] if m["source"] == "realized"}
    assert realized["accuracy"]["value"] == pytest.approx(accuracy_score(truth, predicted))
    assert realized["f1"]["value"] == pytest.approx(f1_score(truth, predicted))
    assert realized["roc_auc"]["value"] == pytest.approx(roc_auc_score(truth, served["probability"][used]))
    assert realized["accuracy"]["lower"] < realized["accuracy"]["value"] < realized["accuracy"]["upper"]
    assert realized["accuracy"]["breached"] and result["degraded"]
    estimated = {m["metric"] for m in result["metrics"] if m["source"] == "estimated"}
    assert estimated == {"accuracy", "f1", "roc_auc"}
    groups = {g["group"]: g for g in result["groups"]}
    assert not groups["x"]["included"] and groups["x"]["rows"] < 30 and groups["f"]["included"]
    big = np.isin(served["sex"][used], ["f", "m"])
    expected = demographic_parity_difference(
        truth[big], predicted[big], sensitive_features=served["sex"][used][big]
    )
    assert result["fairness"][0]["value"] == pytest.approx(expected)

    report = (tmp_path / "out" / "report.html").read_text()
    assert "<h2>Performance</h2>" in report and "<h2>Fairness</h2>" in report and "DEGRADED" in report
    assert "(below minimum, excluded)" in report

    summary = decode((tmp_path / "termination").read_text())
    assert isinstance(summary, DriftSummary) and summary.performance is not None
    status = apply_check(DriftMonitorStatus(), finished_job(), summary, 1)
    assert status.performance == summary.performance
    degraded = next(c for c in status.conditions if c.type == "PerformanceDegraded")
    assert (degraded.status, degraded.reason) == ("True", "BelowThreshold")
    assert "realized accuracy" in degraded.message
    series, key = ObjectSeries(), ("DriftMonitor", "ns", "watch")
    record_performance(series, key, status.performance)
    labels = {"namespace": "ns", "monitor": "watch"}
    assert gauge("kubeloop_monitor_label_coverage", labels) == pytest.approx(0.8)
    assert gauge("kubeloop_monitor_performance", {**labels, "metric": "accuracy", "source": "realized"}) == (
        pytest.approx(accuracy_score(truth, predicted))
    )
    assert (
        gauge("kubeloop_monitor_performance", {**labels, "metric": "roc_auc", "source": "estimated"})
        is not None
    )
    assert gauge("kubeloop_monitor_performance_threshold", {**labels, "metric": "accuracy"}) == 0.99
    fairness_labels = {**labels, "metric": "demographic_parity_difference"}
    assert gauge("kubeloop_monitor_fairness", fairness_labels) == pytest.approx(expected)
    assert gauge("kubeloop_monitor_fairness_threshold", fairness_labels) == 0.5
    record_performance(series, key, None)
    assert gauge("kubeloop_monitor_label_coverage", labels) is None


def test_missing_labels_are_no_error_coverage_zero(tmp_path: Path) -> None:
    served = serve_predictions(tmp_path / "payloads", np.random.default_rng(1))
    assert served["truth"].size == ROWS
    pq.write_table(pa.table({"age": np.arange(100.0)}), tmp_path / "ref.parquet")
    config = {"performance": {"labelsUri": str(tmp_path / "nowhere"), "task": "binary"}}
    code = run_check(tmp_path, config)
    assert code == 0
    result = json.loads((tmp_path / "out" / "result.json").read_text())["performance"]
    assert (result["labelled"], result["label_coverage"], result["degraded"]) == (0, 0.0, False)
    assert "no labels" in result["message"]


def run_check(tmp_path: Path, config: dict[str, Any]) -> int:
    return main(
        [
            "check",
            "--reference", str(tmp_path / "ref.parquet"),
            "--payload-log", str(tmp_path / "payloads"),
            "--model", "churn",
            "--config", json.dumps(config),
            "--output-dir", str(tmp_path / "out"),
            "--termination-log", str(tmp_path / "termination"),
            "--quiet",
        ]
    )  # fmt: skip


def finished_job() -> dict[str, Any]:
    return {
        "metadata": {"name": "check-1", "creationTimestamp": "2026-11-30T12:00:00Z"},
        "status": {
            "conditions": [{"type": "Complete", "status": "True"}],
            "completionTime": "2026-11-30T12:01:00Z",
        },
    }


def gauge(name: str, labels: dict[str, str]) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_a_wrong_output_name_is_reported_and_the_drift_verdict_stands(tmp_path: Path) -> None:
    serve_predictions(tmp_path / "payloads", np.random.default_rng(2))
    pq.write_table(pa.table({"age": np.arange(100.0)}), tmp_path / "ref.parquet")
    config = {"performance": {"task": "regression", "prediction": "variable"}}
    assert run_check(tmp_path, config) == 0
    document = json.loads((tmp_path / "out" / "result.json").read_text())
    assert document["performance"]["error"] == (
        "cannot measure performance: the payload log has no '_output.variable' column"
    )
    assert document["tested_features"] == 1
    summary = decode((tmp_path / "termination").read_text())
    assert isinstance(summary, DriftSummary) and summary.performance is not None
    status = apply_check(DriftMonitorStatus(), finished_job(), summary, 1)
    condition = next(c for c in status.conditions if c.type == "PerformanceDegraded")
    assert (condition.status, condition.reason) == ("Unknown", "PerformanceNotMeasured")
    assert next(c for c in status.conditions if c.type == "DriftDetected").status in ("True", "False")
