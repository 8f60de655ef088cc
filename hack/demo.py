"""`make demo`: the whole loop on a real node, every step a real pod.

Images built here, a real kubelet, kubeloop installed with Helm (operator, MLflow, an S3 server), then:
train (a TrainingJob registers churn@champion) -> serve (a ModelDeployment of models:/churn@champion) ->
live traffic, then traffic that drifted -> a forced DriftMonitor check finds the drift, writes its report
and starts a retrain -> the retrained model is registered as champion -> the servers roll to it.
The cluster stays up afterwards (`make platform-down` removes it).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.e2e.loop import (  # noqa: E402
    MONITOR,
    SERVER,
    Loop,
    infer_body,
    post,
    ready_with_version,
    serving_versions,
    succeeded,
)
from tests.e2e.platform import Platform, namespace  # noqa: E402
from tests.fixtures.churn import churn_data  # noqa: E402
from tests.fixtures.cluster import wait_for  # noqa: E402

NAMESPACE = "kubeloop-demo"
STARTED = time.monotonic()


def step(message: str) -> None:
    print(f"\n\033[1m==> [{time.monotonic() - STARTED:5.0f}s] {message}\033[0m", flush=True)


def say(message: str) -> None:
    print(f"    {message}", flush=True)


def wait(platform: Platform, kind: str, name: str, check: Any, timeout: float, what: str) -> dict[str, Any]:
    say(f"waiting: {what}")
    status: dict[str, Any] = platform.wait_status(kind, name, NAMESPACE, check, timeout, what)["status"]
    return status


def fresh_namespace(platform: Platform) -> None:
    k = platform.kubectl
    if k.get("namespace", NAMESPACE, "default") is not None:
        say(f"deleting the previous run's namespace {NAMESPACE}")
        k.run("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=180s", check=False)


def main() -> None:
    step("kubeloop on a real node: images, kubelet + containerd, CoreDNS, metrics-server, S3, Helm chart")
    platform = Platform.up(None)
    fresh_namespace(platform)
    loop = Loop(NAMESPACE, model=f"churn-{int(time.time())}")  # a new registered model per run
    with namespace(platform, NAMESPACE, keep=True):
        step("data: 4,000 customers for training, and newer data that drifted, in the in-cluster S3 server")
        platform.put_table(loop.train_uri, churn_data(4000, 0.0, seed=1))
        platform.put_table(loop.latest_uri, churn_data(4000, 1.0, seed=4))
        say(f"{loop.train_uri}\n    {loop.latest_uri}")

        step("TrainingJob churn-gbm: a trainer pod trains, logs to MLflow, exports ONNX, registers")
        platform.apply(loop.gradient_boosting("churn-gbm"), NAMESPACE)
        trained = wait(platform, "trainingjob", "churn-gbm", succeeded, 900, "churn-gbm Succeeded")
        v1 = trained["registeredModel"]["version"]
        say(f"registered {loop.model} version {v1} as champion; metrics {trained['metrics']}")

        step(f"ModelDeployment {SERVER}: models:/{loop.model}@champion on Open Inference Protocol v2")
        platform.apply(loop.model_deployment(f"models:/{loop.model}@champion"), NAMESPACE)
        wait(platform, "modeldeployment", SERVER, ready_with_version(v1), 600, f"{SERVER} Ready")
        base = platform.service_url(SERVER, NAMESPACE)
        sent = 0
        for seed in range(5):
            sent += len(post(f"{base}/v2/models/{SERVER}/infer", infer_body(base, 200, 0.0, seed))["outputs"])
        for seed in range(5):
            post(f"{base}/v2/models/{SERVER}/infer", infer_body(base, 200, 1.0, seed=10 + seed))
        say(f"sent 1,000 rows like the training data, then 1,000 that drifted, through the Service {base}")
        time.sleep(5)  # the payload log flushes every 2 s

        step(f"DriftMonitor {MONITOR}: forcing its CronJob now (kubectl create job --from=cronjob/...)")
        platform.apply(loop.drift_monitor(), NAMESPACE)
        cronjobs = wait_for(
            lambda: platform.kubectl.items("cronjobs", NAMESPACE, f"kubeloop.io/driftmonitor={MONITOR}"),
            120,
            what="the check CronJob",
        )
        job = f"{MONITOR}-now-{int(time.time())}"
        platform.kubectl.run(
            "create", "job", "-n", NAMESPACE, job, f"--from=cronjob/{cronjobs[0]['metadata']['name']}"
        )
        drift = wait(
            platform,
            "driftmonitor",
            MONITOR,
            lambda s: s.get("lastCheckTime") and s.get("lastTriggeredTrainingJob"),
            600,
            "the check, and the retrain it starts",
        )
        retrain = drift["lastTriggeredTrainingJob"]
        say(f"drift share {drift['driftShare']:.2f}; report {drift['reportUri']}")

        step(f"TrainingJob {retrain} (made by the DriftMonitor) retrains on the latest data")
        retrained = wait(platform, "trainingjob", retrain, succeeded, 900, f"{retrain} Succeeded")
        v2 = retrained["registeredModel"]["version"]
        say(f"registered version {v2} as champion; metrics {retrained['metrics']}")
        wait(
            platform,
            "modeldeployment",
            SERVER,
            ready_with_version(v2),
            600,
            f"servers rolled to version {v2}",
        )
        wait_for(
            lambda: serving_versions(platform, NAMESPACE) == {v2},
            600,
            interval=2,
            what="the old server pods gone",
        )
        answer = post(f"{base}/v2/models/{SERVER}/infer", infer_body(base, 3, 1.0, seed=99))

        step("summary")
        rows = [
            ("registered model", f"{loop.model}: version {v1} (trained), version {v2} (retrained on drift)"),
            ("first metrics", str(trained["metrics"])),
            ("retrained metrics", str(retrained["metrics"])),
            ("drift", f"share {drift['driftShare']:.2f}, dataset drift {drift['datasetDrift']}"),
            *(
                (f"  {f['name']}", f"{f['test']} {f['score']:.4f} (threshold {f['threshold']})")
                for f in drift["features"]
            ),
            ("drift report", f"{drift['reportUri']} (credentials: /tmp/kubeloop-node/s3.env)"),
            ("server", f"{base}/v2/models/{SERVER}/infer answers with version {answer['model_version']}"),
            ("MLflow", platform.service_url("kubeloop-mlflow", "kubeloop-system")),
        ]
        for key, value in rows:
            print(f"    {key:<20} {value}")
        step(f"kubectl get kubeloop -n {NAMESPACE}")
        print(platform.kubectl.run("get", "kubeloop", "-n", NAMESPACE).stdout)
        print(f"export KUBECONFIG={platform.kubeconfig}  # then: kubectl get kubeloop -A; make platform-down")


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, RuntimeError, subprocess.CalledProcessError) as error:
        sys.exit(f"demo failed: {error}")
