"""The whole loop on real pods, in order: train, distributed train, serve, drift -> retrain -> roll, rollout
under load, autoscaling. Each test builds on the one before (module state), as a user's day would.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from kubeloop.loadgen import SteadyLoad
from tests.e2e.loop import (
    MONITOR,
    SERVER,
    Loop,
    check_now,
    churn_loop,
    infer_body,
    post,
    ready_with_version,
    serving_versions,
    succeeded,
)
from tests.e2e.platform import ROOT, Platform
from tests.fixtures.churn import churn_data
from tests.fixtures.cluster import wait_for

# Real pods take minutes; the first test also waits for the platform to come up.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]
RESULTS = ROOT / ".run/e2e"


def record(name: str, data: dict[str, Any]) -> None:
    """Measurements a person reads (closing notes, README): .run/e2e/<name>.json and the test output."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2))
    print(f"\n{name}: {json.dumps(data)}")


@pytest.fixture(scope="module")
def loop(platform: Platform, e2e_namespace: str) -> Loop:
    run = churn_loop(platform, e2e_namespace)  # versions start at 1 on every run
    platform.put_table(run.latest_uri, churn_data(4000, 1.0, seed=4))
    return run


def server_url(platform: Platform, loop: Loop) -> str:
    return platform.service_url(SERVER, loop.namespace)


def payload_files(platform: Platform, loop: Loop) -> list[str]:
    files: list[str] = platform.s3().glob(f"{loop.payloads}/{SERVER}/dt=*/*.parquet")
    return files


def test_training_job_trains_tracks_and_registers(platform: Platform, loop: Loop) -> None:
    platform.apply(loop.gradient_boosting("churn-gbm"), loop.namespace)
    done = platform.wait_status(
        "trainingjob", "churn-gbm", loop.namespace, succeeded, 600, "churn-gbm Succeeded"
    )
    status = done["status"]
    assert status["registeredModel"] == {"name": loop.model, "version": "1", "alias": "champion"}
    assert status["metrics"], "final metrics reach the status"
    run = platform.mlflow("runs/get", run_id=status["mlflowRunId"])["run"]
    assert run["info"]["status"] == "FINISHED"
    assert {m["key"] for m in run["data"]["metrics"]} >= set(status["metrics"])
    alias = platform.mlflow("registered-models/alias", name=loop.model, alias="champion")["model_version"]
    assert alias["version"] == "1" and alias["run_id"] == status["mlflowRunId"]
    record("training", {"metrics": status["metrics"], "run": status["mlflowRunId"], "version": "1"})


def test_distributed_pytorch_rendezvous_through_the_headless_service(platform: Platform, loop: Loop) -> None:
    tj = loop.training_job(
        "churn-ddp", workers=2, builtin={"algorithm": "mlp"}, hyperparameters={"epochs": 2, "batch_size": 256}
    )
    platform.apply(tj, loop.namespace)
    platform.wait_status("trainingjob", "churn-ddp", loop.namespace, succeeded, 900, "churn-ddp Succeeded")
    job = platform.kubectl.get("job", "churn-ddp", loop.namespace)
    assert job is not None and job["status"].get("succeeded") == 2, "both ranks finished"
    pods = platform.kubectl.items("pods", loop.namespace, "job-name=churn-ddp")
    master = next(e["value"] for e in pods[0]["spec"]["containers"][0]["env"] if e["name"] == "MASTER_ADDR")
    assert master.startswith("churn-ddp-0.churn-ddp."), "rank 0 is found by its DNS name"
    assert sorted(p["spec"]["hostname"] for p in pods) == ["churn-ddp-0", "churn-ddp-1"]


def test_model_deployment_serves_the_registry_model_and_logs_payloads(platform: Platform, loop: Loop) -> None:
    platform.apply(loop.model_deployment(f"models:/{loop.model}@champion"), loop.namespace)
    platform.wait_status("modeldeployment", SERVER, loop.namespace, ready_with_version("1"), 300, "Ready v1")
    base = server_url(platform, loop)
    answer = post(f"{base}/v2/models/{SERVER}/infer", infer_body(base, 200, 0.0, seed=2))
    assert answer["model_version"] == "1"
    assert answer["outputs"][0]["shape"][0] == 200
    files = wait_for(lambda: payload_files(platform, loop), 60, interval=2, what="payload log files in S3")
    record("serving", {"url": base, "payload_files": len(files), "first": files[0]})


def test_drift_check_reports_retrains_and_the_alias_move_rolls_the_servers(
    platform: Platform, loop: Loop
) -> None:
    base = server_url(platform, loop)
    before = len(payload_files(platform, loop))
    for seed in range(5):  # live traffic that no longer looks like the training data
        post(f"{base}/v2/models/{SERVER}/infer", infer_body(base, 200, 1.0, seed=10 + seed))
    wait_for(
        lambda: len(payload_files(platform, loop)) > before, 60, interval=2, what="shifted payloads flushed"
    )
    platform.apply(loop.drift_monitor(), loop.namespace)
    check_now(platform, loop.namespace, MONITOR, "churn-drift-now")
    checked = platform.wait_status(
        "driftmonitor",
        MONITOR,
        loop.namespace,
        lambda s: s.get("lastCheckTime") and s.get("lastTriggeredTrainingJob"),
        600,
        "a finished check that triggered a retrain",
    )["status"]
    assert checked["datasetDrift"] is True and checked["driftShare"] > 0
    assert {c["type"]: c["status"] for c in checked["conditions"]}.get("DriftDetected") == "True"
    report = checked["reportUri"]
    assert report.endswith(".html") and platform.s3().exists(report), f"the HTML report is in S3: {report}"
    metrics = platform.operator_metrics()
    assert f'kubeloop_drift_detected{{monitor="{MONITOR}",namespace="{loop.namespace}"}} 1.0' in metrics
    retrain = checked["lastTriggeredTrainingJob"]
    trained = platform.wait_status(
        "trainingjob", retrain, loop.namespace, succeeded, 600, f"{retrain} Succeeded"
    )
    assert trained["status"]["registeredModel"] == {"name": loop.model, "version": "2", "alias": "champion"}
    platform.wait_status(
        "modeldeployment", SERVER, loop.namespace, ready_with_version("2"), 300, "rolled to v2"
    )
    wait_for(
        lambda: serving_versions(platform, loop.namespace) == {"2"},
        300,
        interval=2,
        what="every server on v2",
    )
    record(
        "drift",
        {
            "drift_share": checked["driftShare"],
            "features": {f["name"]: round(f["score"], 4) for f in checked["features"]},
            "report": checked["reportUri"],
            "retrain": retrain,
            "new_version": "2",
        },
    )


def test_rolling_update_under_load_loses_no_request(platform: Platform, loop: Loop) -> None:
    base = server_url(platform, loop)
    body = infer_body(base, 4, 0.0, seed=3)
    timeline: list[tuple[float, str]] = []
    with SteadyLoad(f"{base}/v2/models/{SERVER}/infer", body, rate=300, connections=8) as load:
        time.sleep(5)
        timeline.append((round(time.monotonic() - load.started, 1), "pin version 1: the rollout starts"))
        platform.apply(loop.model_deployment(f"models:/{loop.model}/1"), loop.namespace)
        wait_for(
            lambda: serving_versions(platform, loop.namespace) == {"1"},
            300,
            interval=1,
            what="old server pods gone",
        )
        timeline.append((round(time.monotonic() - load.started, 1), "rollout complete"))
        time.sleep(5)
        rps = load.rps
    result = load.result.summary() | {"achieved_rps": round(rps, 1), "timeline": timeline}
    record("rollout", result)
    assert load.result.sent > 1000, "hundreds of requests per second over the rollout"
    assert load.result.failed == 0, f"requests lost during the rollout: {result}"
    assert set(load.result.versions) == {"1", "2"}, "both versions answered: the rollout happened under load"


def test_autoscaler_adds_replicas_under_load_and_scales_back(platform: Platform, loop: Loop) -> None:
    fast = {"targetCpuUtilization": 30, "scaleDownStabilizationSeconds": 10}
    platform.apply(loop.model_deployment(f"models:/{loop.model}/1", autoscaling=fast), loop.namespace)
    base = server_url(platform, loop)
    body = infer_body(base, 64, 0.0, seed=5)
    timeline: list[dict[str, Any]] = []
    started = time.monotonic()

    def replicas() -> int:
        status = (platform.kubectl.get("hpa", SERVER, loop.namespace) or {}).get("status", {})
        cpu = [m["resource"]["current"].get("averageUtilization") for m in status.get("currentMetrics") or []]
        timeline.append(
            {
                "t": round(time.monotonic() - started),
                "replicas": status.get("currentReplicas"),
                "desired": status.get("desiredReplicas"),
                "cpu_percent": cpu[0] if cpu else None,
            }
        )
        return int(status.get("currentReplicas") or 0)

    with SteadyLoad(f"{base}/v2/models/{SERVER}/infer", body, rate=2000, connections=16) as load:
        wait_for(lambda: replicas() > 1, 420, interval=5, what="the HPA adding replicas under load")
        time.sleep(20)
        replicas()
    peak = max(int(t["replicas"] or 0) for t in timeline)
    wait_for(lambda: replicas() == 1, 420, interval=5, what="the HPA scaling back without load")
    record("autoscaling", {"peak_replicas": peak, "load": load.result.summary(), "timeline": timeline})
    assert peak > 1
