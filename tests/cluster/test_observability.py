"""A real Prometheus (Debian's) scrapes a live `kubeloop serve` under load and a live operator driven
through every kind; every PromQL expression of every dashboard panel (and every variable query) must
evaluate without error and return series, and the key panels must show what the test did."""

from __future__ import annotations

import math
import shutil
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubeloop.api.performance import FairnessValue, MetricValue, PerformanceResult
from kubeloop.api.progress import PROGRESS_TAG
from kubeloop.api.summaries import DriftSummary, TrainingSummary, decode, encode
from kubeloop_trainer.progress_report import Plan, ProgressReporter
from kubeloop_trainer.tags import UID_TAG
from kubeloop_trainer.tracking import Tracker
from tests.cluster.live_server import MODEL, Load, Server, bad_requests
from tests.cluster.manifests import drift_monitor, model_deployment, training_job
from tests.cluster.test_drift import TEMPLATE, drifted_summary, run_check
from tests.cluster.test_training import exit_pod
from tests.fixtures.cluster import Cluster, Kubectl, OperatorProcess, wait_for
from tests.fixtures.mlflow_server import MlflowServer
from tests.fixtures.ports import free_port
from tests.fixtures.prometheus import Prometheus, values_of
from tests.unit.chart.dashboards import (
    label_values_as_promql,
    load,
    queries,
    substitute,
    variable_query,
    variables,
)

pytestmark = pytest.mark.cluster

MONITOR = "watch"
RATE_INTERVAL = "1m"
# One step, analysed every 2 s from the canary server's own series (kwok runs no pod: the canary track is
# the second `kubeloop serve` below, scraped under the canary's labels).
CANARY = {
    "model": {"uri": "models:/churn/2"},
    # a window of 4 s (4 scrapes of each series): an analysis over one or two samples per series once
    # passed without outputPsi, whose histograms it found empty, and the last analysis stays on the panel
    "analysis": {"steps": [50], "intervalSeconds": 4, "warmupSeconds": 0, "minRequests": 1},
}


# ---------------------------------------------------------------- the operator's side


@pytest.fixture
def observed_namespace(crds: Cluster) -> Iterator[str]:
    """A namespace only this test's operator watches (the shared operator watches kl-test-*)."""
    name = f"kl-obs-{uuid.uuid4().hex[:6]}"
    crds.kubectl.run("create", "namespace", name)
    yield name
    crds.kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def phase(kubectl: Kubectl, ns: str, name: str) -> str | None:
    return ((kubectl.get("trainingjob", name, ns) or {}).get("status") or {}).get("phase")


def drifted_summary_with_performance() -> str:
    """The drifted check's summary, with performance measured from labels and estimated (CBPE)."""
    summary = decode(drifted_summary())
    assert isinstance(summary, DriftSummary)
    accuracy = [
        MetricValue(metric="accuracy", source=source, value=value, threshold=0.8)
        for source, value in (("realized", 0.82), ("estimated", 0.79))
    ]
    fairness = [
        FairnessValue(attribute="sex", metric="demographic_parity_difference", value=0.04, threshold=0.1)
    ]
    performance = PerformanceResult(
        task="binary",
        predictions=400,
        matured=400,
        labelled=300,
        label_coverage=0.75,
        metrics=accuracy,
        fairness=fairness,
    )
    return encode(summary.model_copy(update={"performance": performance}))


def report_progress(tracking_uri: str, kubectl: Kubectl, ns: str, name: str) -> None:
    """What the trainer of a running job writes to its MLflow run (kwok runs no trainer): epoch 4 of 10."""
    uid = (kubectl.get("trainingjob", name, ns) or {})["metadata"]["uid"]
    tracker = Tracker(tracking_uri, ns)  # the job's experiment: its namespace
    run = tracker.start_run(name, {UID_TAG: uid})
    reporter = ProgressReporter(
        lambda text: tracker.set_tags(run, {PROGRESS_TAG: text}),
        Plan(total_epochs=10, steps_per_epoch=5),
        min_interval=0,
    )
    reporter.epoch(4, {"val_loss": 0.4})


def drive_the_operator(kubectl: Kubectl, ns: str, tracking_uri: str) -> None:
    """Serving (with a canary under analysis), training (success, failure, one left running on GPUs and
    reporting progress) and drift (drift + retrain, and a failed check): every series the dashboards read
    gets a value."""
    kubectl.apply(model_deployment(MODEL, replicas={"min": 1, "max": 3}, canary=CANARY), ns)
    kubectl.apply(training_job("ok", resources={"gpus": 1}), ns)
    kubectl.apply(training_job("oom"), ns)
    kubectl.apply(training_job("running", resources={"gpus": 2}), ns)
    action = {"type": "Retrain", "cooldownSeconds": 3600, "trainingJobTemplate": TEMPLATE}
    kubectl.apply(drift_monitor(MONITOR, target=MODEL, action=action), ns)

    exit_pod(kubectl, ns, "ok", 0, encode(TrainingSummary(metrics={"f1": 0.9})))
    exit_pod(kubectl, ns, "oom", 137)
    wait_for(lambda: phase(kubectl, ns, "ok") == "Succeeded", 60, what="ok Succeeded")
    wait_for(lambda: phase(kubectl, ns, "oom") == "Failed", 60, what="oom Failed")
    wait_for(lambda: phase(kubectl, ns, "running") == "Running", 60, what="running Running")
    report_progress(tracking_uri, kubectl, ns, "running")

    def progress() -> float | None:
        status = (kubectl.get("trainingjob", "running", ns) or {}).get("status") or {}
        return (status.get("progress") or {}).get("percent")

    wait_for(lambda: progress() == 40.0, 60, what="the running job's progress in status")

    wait_for(lambda: kubectl.get("cronjob", f"{MONITOR}-check", ns), 60, what="the drift CronJob")
    run_check(kubectl, ns, "check-1", drifted_summary_with_performance())

    def status() -> dict[str, Any]:
        return (kubectl.get("driftmonitor", MONITOR, ns) or {}).get("status") or {}

    wait_for(lambda: status().get("lastTriggeredTrainingJob"), 60, what="the retrain")
    run_check(kubectl, ns, "check-bad", "", code=4)
    wait_for(lambda: status().get("checksFailed") == 1, 60, what="the failed check")


# ---------------------------------------------------------------- the test


@dataclass(frozen=True)
class Evaluated:
    where: str
    expr: str
    series: list[dict[str, Any]]
    error: str | None


def evaluate_dashboards(prometheus: Prometheus, ns: str) -> dict[str, list[Evaluated]]:
    values = {"namespace": ns, "model": MODEL, "monitor": MONITOR, "__rate_interval": RATE_INTERVAL}
    out: dict[str, list[Evaluated]] = {}
    for name, board in load().items():
        results: list[Evaluated] = []
        for variable in variables(board).values():
            if variable["type"] != "query":
                continue
            expr = substitute(label_values_as_promql(variable_query(variable))[0], values)
            answer = prometheus.query(expr)
            series = answer.get("data", {}).get("result", [])
            results.append(
                Evaluated(f"{name}: variable {variable['name']}", expr, series, answer.get("error"))
            )
        for query in queries(name, board):
            expr = substitute(query.expr, values)
            answer = prometheus.query(expr)
            series = answer.get("data", {}).get("result", [])
            results.append(
                Evaluated(f"{name}: {query.panel} [{query.ref}]", expr, series, answer.get("error"))
            )
        out[name] = results
    return out


def failures(results: dict[str, list[Evaluated]]) -> list[str]:
    return [
        f"{r.where}: {r.error or 'no series'}\n    {r.expr}"
        for board in results.values()
        for r in board
        if r.error or not r.series
    ]


def complete(prometheus: Prometheus, ns: str, checks: set[str]) -> dict[str, list[Evaluated]] | None:
    """Every panel's queries, once each returns series and the canary's last analysis has ``checks``."""
    results = evaluate_dashboards(prometheus, ns)
    if failures(results):
        return None
    reported = values_of(panel(results, "serving", "Canary checks (last analysis)"), "check")
    return results if reported.keys() >= checks else None


def panel(
    results: dict[str, list[Evaluated]], board: str, title: str, ref: str = "A"
) -> list[dict[str, Any]]:
    return next(r.series for r in results[board] if r.where == f"{board}: {title} [{ref}]")


def scrape_configs(ns: str, operator_port: int, stable: Server, canary: Server) -> dict[str, Any]:
    def server(target: Server, pod: str) -> dict[str, Any]:
        # What the chart's Prometheus gives a server's series: its namespace (and pod).
        return {"targets": [f"127.0.0.1:{target.port}"], "labels": {"namespace": ns, "pod": pod}}

    return {
        # honor_labels: the operator's series carry the namespace of the resource they describe.
        "kubeloop-operator": {
            "honor_labels": True,
            "static_configs": [{"targets": [f"127.0.0.1:{operator_port}"]}],
        },
        "kubeloop-serving": {
            "static_configs": [server(stable, f"{MODEL}-0"), server(canary, f"{MODEL}-canary-0")]
        },
    }


def operator_and_prometheus(
    crds: Cluster, ns: str, tmp_path: Path, stable: Server, canary: Server, tracking_uri: str
) -> tuple[OperatorProcess, Prometheus]:
    """The operator analyses canaries from this Prometheus, which scrapes it and both servers, and
    reads training progress from this MLflow."""
    operator_port = free_port()
    prometheus = Prometheus(tmp_path, scrape_configs(ns, operator_port, stable, canary))
    settings = {
        "KUBELOOP_OPERATOR_PROMETHEUS_URL": prometheus.url,
        "KUBELOOP_OPERATOR_ROLLOUT_POLL_SECONDS": "1",
        "KUBELOOP_OPERATOR_MLFLOW_TRACKING_URI": tracking_uri,
        "KUBELOOP_OPERATOR_PROGRESS_POLL_SECONDS": "2",
    }
    operator = OperatorProcess(crds, ns, tmp_path / "operator.log", settings)
    operator.metrics_port = operator_port
    return operator.start(), prometheus.start()


def assert_rollout_panels(results: dict[str, list[Evaluated]]) -> None:
    tracks = {s["metric"]["track"] for s in panel(results, "serving", "Requests per second by track")}
    assert tracks == {"stable", "canary"}, tracks
    assert values_of(panel(results, "serving", "Canary weight"), "modeldeployment").keys() == {MODEL}
    assert len(panel(results, "serving", "Rollout phase")) == 1, "one current phase"
    checks = values_of(panel(results, "serving", "Canary checks (last analysis)"), "check")
    assert checks.keys() >= {"errorRate", "outputPsi"} and checks["errorRate"] == 0.0, checks


def test_every_dashboard_query_returns_series_from_live_components(
    crds: Cluster, observed_namespace: str, tmp_path: Path, mlflow_server: MlflowServer
) -> None:
    if shutil.which("prometheus") is None:
        pytest.skip("Debian's prometheus is not installed: run hack/install-system.sh")
    kubectl, ns = crds.kubectl, observed_namespace
    (tmp_path / "canary").mkdir()
    server, canary = Server(tmp_path).start(), Server(tmp_path / "canary", track="canary").start()
    tracking = mlflow_server.tracking_uri
    operator, prometheus = operator_and_prometheus(crds, ns, tmp_path, server, canary, tracking)
    try:
        with Load(server) as load, Load(canary, workers=2):
            bad_requests(server)
            drive_the_operator(kubectl, ns, tracking)
            wait_for(
                lambda: len(prometheus.series('up{job=~"kubeloop-.*"} == 1')) == 3, 60, what="every target up"
            )
            wait_for(
                lambda: prometheus.series(
                    f'kubeloop_drift_checks_total{{namespace="{ns}", result="failed"}}'
                ),
                60,
                what="the failed check scraped",
            )
            wait_for(
                lambda: prometheus.series(f'kubeloop_serving_payload_log_rows_total{{namespace="{ns}"}} > 0'),
                60,
                what="payload rows written and scraped",
            )
            # rate() needs two samples of a series: the newest ones appear a scrape or two later, and the
            # canary's analysis (both checks on its panel) comes 4 s after the canary started.
            try:
                results = wait_for(
                    lambda: complete(prometheus, ns, checks={"errorRate", "outputPsi"}),
                    60,
                    interval=1,
                    what="every query, and both canary checks",
                )
            except AssertionError:
                results = evaluate_dashboards(prometheus, ns)
        assert load.answered.get(200, 0) > 0 and load.answered.get(400, 0) > 0, load.answered
        assert not failures(results), "\n".join(failures(results))

        requests = panel(results, "serving", "Requests per second")
        assert {"200", "400"} <= {s["metric"]["code"] for s in requests}
        assert float(panel(results, "serving", "Error ratio")[0]["value"][1]) > 0
        p99 = float(panel(results, "serving", "Latency p50 / p95 / p99", "C")[0]["value"][1])
        assert math.isfinite(p99) and p99 > 0, "latency under load"
        assert float(panel(results, "serving", "Rows per onnxruntime call")[0]["value"][1]) >= 1
        bounds = {
            r: float(panel(results, "serving", "Replicas vs autoscaler bounds", r)[0]["value"][1])
            for r in "CD"
        }
        assert bounds == {"C": 1.0, "D": 3.0}, "HPA min and max"
        assert_rollout_panels(results)

        phases = values_of(panel(results, "training", "TrainingJobs by phase"), "phase")
        assert phases["Succeeded"] >= 1 and phases["Failed"] >= 1 and phases["Running"] >= 1, phases
        assert float(panel(results, "training", "GPUs held by running jobs")[0]["value"][1]) == 2.0
        assert values_of(panel(results, "training", "Failures by reason"), "reason") == {"OOMKilled": 1.0}
        durations = values_of(panel(results, "training", "Mean run duration"), "phase")
        assert durations["Succeeded"] > 0, durations
        progress = values_of(panel(results, "training", "Progress of running jobs"), "trainingjob")
        assert progress == {"running": 40.0}, progress

        assert values_of(panel(results, "drift", "Drift share"), "monitor") == {MONITOR: 0.5}
        assert values_of(panel(results, "drift", "Dataset drift"), "monitor") == {MONITOR: 1.0}
        assert values_of(panel(results, "drift", "Checks failed"), "monitor") == {MONITOR: 1.0}
        assert values_of(panel(results, "drift", "Retrains triggered"), "monitor") == {MONITOR: 1.0}
        scores = {
            (s["metric"]["feature"], s["metric"]["test"]): float(s["value"][1])
            for s in panel(results, "drift", "Drift score per feature")
        }
        assert scores[("age", "psi")] == 0.41
    finally:
        kubectl.run(
            "delete", "modeldeployments,trainingjobs,driftmonitors", "--all", "-n", ns,
            "--wait=true", "--timeout=120s", check=False,
        )  # fmt: skip
        for component in (prometheus, server, canary):
            component.stop()
        operator.kill(signal.SIGTERM)
        print(f"\n--- operator log tail ---\n{operator.tail()}\n--- serve ---\n{server.log_tail()}")
