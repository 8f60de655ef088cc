"""`make demo`: the whole loop on a real node, every step a real pod.

Images built here, a real kubelet, kubeloop installed with Helm (operator, MLflow, an S3 server), then:
train (a TrainingJob registers churn@champion) -> serve (a ModelDeployment of models:/churn@champion, whose
canary follows @challenger) -> live traffic, then traffic that drifted -> a forced DriftMonitor check finds
the drift, writes its report and starts a retrain -> the retrained model must beat the champion on the
latest data (challenger gate) -> as challenger it gets an exact share of requests, step by step, checked
from Prometheus -> promoted: the champion alias moves and the stable servers roll to it.
The cluster stays up afterwards (`make platform-down` removes it).

When KUBECONFIG (or ~/.kube/config) reaches a cluster other than this machine's node, the loop runs there
instead (KUBELOOP_CLUSTER=local|existing forces the choice; tests/e2e/target.py): the images are pushed to
KUBELOOP_REGISTRY, and this host reaches the Services through kubectl port-forward.
`hack/demo.py --target` prints the choice alone (`local` or `existing`), for the Makefile.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.e2e.load import PodLoad  # noqa: E402
from tests.e2e.loop import (  # noqa: E402
    MONITOR,
    SERVER,
    Loop,
    check_now,
    checks_line,
    infer_body,
    metrics_line,
    post,
    ready_with_version,
    serving_versions,
    succeeded,
)
from tests.e2e.platform import Platform, namespace  # noqa: E402
from tests.e2e.target import Target, TargetError, choose, kubectl_reaches  # noqa: E402
from tests.fixtures.churn import TARGET, churn_data  # noqa: E402
from tests.fixtures.cluster import wait_for  # noqa: E402

NAMESPACE = "kubeloop-demo"
# The canary's analysis: short steps for a demo. A model retrained on drifted data is meant to predict
# differently from the one it replaces, so the output bound here only catches a broken model.
ANALYSIS = {
    "steps": [20, 50],
    "intervalSeconds": 15,
    "warmupSeconds": 5,
    "minRequests": 50,
    "checks": {"maxErrorRate": 0.01, "maxP99Seconds": 2.0, "maxOutputPsi": 2.0},
}
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


def follow_rollout(platform: Platform, version: str) -> dict[str, Any]:
    """Print each change of the canary's rollout until it ends; the last rollout status."""
    seen: tuple[Any, ...] = ()
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        obj = platform.kubectl.get("modeldeployment", SERVER, NAMESPACE) or {}
        rollout: dict[str, Any] = (obj.get("status") or {}).get("rollout") or {}
        now = tuple(rollout.get(k) for k in ("phase", "canaryVersion", "weight", "step"))
        if now != seen and rollout.get("canaryVersion") == version:
            checks = ", ".join(f"{c['name']} {c.get('value')}" for c in rollout.get("checks") or [])
            say(f"[{time.monotonic() - STARTED:5.0f}s] {now[0]}: weight {now[2]}% (step {now[3]}) {checks}")
            seen = now
            if now[0] in ("Promoted", "RolledBack", "Aborted"):
                return rollout
        time.sleep(1)
    raise RuntimeError(f"no verdict on the canary of version {version} within 900 s")


def check_drift_now(platform: Platform, loop: Loop, gate: dict[str, Any]) -> dict[str, Any]:
    """Create the DriftMonitor, run its check at once, and wait for the retrain it starts."""
    platform.apply(loop.drift_monitor(challenge=gate), NAMESPACE)
    check_now(platform, NAMESPACE, MONITOR, f"{MONITOR}-now-{int(time.time())}")
    return wait(
        platform,
        "driftmonitor",
        MONITOR,
        lambda s: s.get("lastCheckTime") and s.get("lastTriggeredTrainingJob"),
        600,
        "the check, and the retrain it starts",
    )


def canary_until_promoted(
    platform: Platform, base: str, version: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Live traffic while the canary of `version` is analysed, promoted and the stable servers roll."""
    body = infer_body(base, 64, 1.0, seed=11)  # 64 customers: a fair sample of the outputs per request
    # From a pod, through the Service as in-cluster clients call it (a port-forward would pin one pod).
    with PodLoad(platform, NAMESPACE, SERVER, f"/v2/models/{SERVER}/infer", body, rate=40) as load:
        rollout = follow_rollout(platform, version)
        if rollout["phase"] != "Promoted":
            raise RuntimeError(f"the canary was not promoted: {rollout}")
        wait(
            platform,
            "modeldeployment",
            SERVER,
            ready_with_version(version),
            600,
            f"stable rolled to {version}",
        )
        wait_for(
            lambda: serving_versions(platform, NAMESPACE) == {version},
            600,
            interval=2,
            what="the old server pods gone",
        )
    traffic = load.summary()
    say(
        f"live traffic during the rollout: {traffic['sent']} sent, {traffic['failed']} failed, "
        f"answered by {traffic['tracks_answering']}"
    )
    return rollout, traffic


def target() -> Target:
    """The cluster this demo runs on: this machine's node, or the one KUBECONFIG reaches."""
    kubectl = Path(
        subprocess.run(
            [ROOT / "hack/build-k8s.sh"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    return choose(
        os.environ, Path.home(), lambda kubeconfig: kubectl_reaches(kubectl / "kubectl", kubeconfig)
    )


def platform_up(where: Target) -> Platform:
    if where.mode == "local":
        step(
            f"kubeloop on a real node ({where.reason}): images, kubelet + containerd, CoreDNS, "
            "metrics-server, S3, Helm chart"
        )
    else:
        registry = os.environ.get("KUBELOOP_REGISTRY")
        step(f"kubeloop on {where.describe()}: images pushed to {registry}, then S3 and the Helm chart")
    return Platform.up(None, where)


def main() -> None:
    where = target()
    platform = platform_up(where)
    fresh_namespace(platform)
    loop = Loop(NAMESPACE, model=f"churn-{int(time.time())}")  # a new registered model per run
    with namespace(platform, NAMESPACE, keep=True):
        step("data: 4,000 customers for training, and newer data that drifted, in the in-cluster S3 server")
        platform.put_table(loop.train_uri, churn_data(4000, 0.0, seed=1))
        platform.put_table(loop.latest_uri, churn_data(4000, 1.0, seed=4))
        holdout = f"s3://kubeloop/datasets/{NAMESPACE}/holdout.parquet"
        platform.put_table(holdout, churn_data(2000, 1.0, seed=5))
        say(f"{loop.train_uri}\n    {loop.latest_uri}\n    {holdout} (what a challenger is judged on)")

        step("TrainingJob churn-gbm: a trainer pod trains, logs to MLflow, exports ONNX, registers")
        platform.apply(loop.gradient_boosting("churn-gbm"), NAMESPACE)
        trained = wait(platform, "trainingjob", "churn-gbm", succeeded, 900, "churn-gbm Succeeded")
        v1 = trained["registeredModel"]["version"]
        say(f"registered {loop.model} version {v1} as champion; metrics: {metrics_line(trained['metrics'])}")

        step(f"ModelDeployment {SERVER}: models:/{loop.model}@champion, its canary following @challenger")
        canary = {"model": {"uri": f"models:/{loop.model}@challenger"}, "analysis": ANALYSIS}
        platform.apply(loop.model_deployment(f"models:/{loop.model}@champion", canary=canary), NAMESPACE)
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
        gate = {
            "champion": f"models:/{loop.model}@champion",
            "dataset": {"uri": holdout, "targetColumn": TARGET},
            "metric": "roc_auc",
        }
        drift = check_drift_now(platform, loop, gate)
        retrain = drift["lastTriggeredTrainingJob"]
        say(f"drift share {drift['driftShare']:.2f}; report {drift['reportUri']}")

        step(f"TrainingJob {retrain} (made by the DriftMonitor) retrains on the latest data, then the gate")
        retrained = wait(platform, "trainingjob", retrain, succeeded, 900, f"{retrain} Succeeded")
        v2, gated = retrained["registeredModel"]["version"], retrained["challenge"]
        say(
            f"version {v2}: {gated['outcome']} ({gated['metric']} {gated['challengerScore']:.4f} vs the "
            f"champion's {gated['championScore']:.4f}); metrics: {metrics_line(retrained['metrics'])}"
        )
        if gated["outcome"] != "Passed":
            raise RuntimeError(f"the retrained model did not beat the champion: {gated}")

        step(f"canary analysis of version {v2} under live traffic (steps {ANALYSIS['steps']} %)")
        rollout, traffic = canary_until_promoted(platform, base, v2)
        # On an existing cluster `base` is a port-forward whose pod the rollout replaced: it is restarted
        # on its first failed connection, so the first attempt may fail.
        answer = wait_for(
            lambda: post(f"{base}/v2/models/{SERVER}/infer", infer_body(base, 3, 1.0, seed=99)),
            60,
            interval=2,
            what="an answer from the promoted servers",
        )

        step("summary")
        rows = [
            ("registered model", f"{loop.model}: version {v1} (trained), version {v2} (retrained on drift)"),
            (
                "challenger gate",
                f"{gated['metric']} {gated['challengerScore']:.4f} vs {gated['championScore']:.4f}",
            ),
            ("canary", f"promoted; last checks: {checks_line(rollout.get('checks', []))}"),
            ("traffic", f"{traffic['sent']} requests during the rollout, {traffic['failed']} failed"),
            ("first metrics", metrics_line(trained["metrics"])),
            ("retrained metrics", metrics_line(retrained["metrics"])),
            ("drift", f"share {drift['driftShare']:.2f}, dataset drift {drift['datasetDrift']}"),
            *(
                (f"  {f['name']}", f"{f['test']} {f['score']:.4f} (threshold {f['threshold']})")
                for f in drift["features"]
            ),
            ("drift report", f"{drift['reportUri']} (credentials: {platform.s3_env})"),
            (
                "server",
                f"{platform.how_to_reach(SERVER, NAMESPACE)}/v2/models/{SERVER}/infer answers with version "
                f"{answer['model_version']}",
            ),
            ("MLflow", platform.how_to_reach("kubeloop-mlflow", "kubeloop-system")),
        ]
        for key, value in rows:
            print(f"    {key:<20} {value}")
        step(f"kubectl get kubeloop -n {NAMESPACE}")
        print(platform.kubectl.run("get", "kubeloop", "-n", NAMESPACE).stdout)
        then = "make platform-down" if where.mode == "local" else "helm uninstall -n kubeloop-system kubeloop"
        print(f"export KUBECONFIG={platform.kubeconfig}  # then: kubectl get kubeloop -A; {then}")


if __name__ == "__main__":
    try:
        if sys.argv[1:] == ["--target"]:
            print(target().mode)
        else:
            main()
    except TargetError as error:
        sys.exit(f"demo: {error}")
    except (AssertionError, RuntimeError, subprocess.CalledProcessError) as error:
        sys.exit(f"demo failed: {error}")
