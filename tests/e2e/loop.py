"""The loop's resources and traffic, shared by the e2e tier and `make demo` (hack/demo.py)."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.e2e.platform import Platform
from tests.fixtures.churn import TARGET, churn_data, feature_matrix
from tests.fixtures.cluster import wait_for

API = "kubeloop.io/v1alpha1"
S3_ENV = [{"secretRef": {"name": "kubeloop-s3"}}]  # credentials and endpoint, by reference
SERVER = "churn"  # the ModelDeployment; also the model name its server answers to
MONITOR = "churn-drift"


@dataclass(frozen=True)
class Loop:
    """One run of the loop in `namespace`: its data, payload log and registered model are its own."""

    namespace: str
    model: str = "churn"

    @property
    def train_uri(self) -> str:
        return f"s3://kubeloop/datasets/{self.namespace}/train.parquet"

    @property
    def latest_uri(self) -> str:
        """Newer data, as it looks after the world changed: what a retrain learns from."""
        return f"s3://kubeloop/datasets/{self.namespace}/latest.parquet"

    @property
    def payloads(self) -> str:
        return f"s3://kubeloop/payloads/{self.namespace}"

    def training_job(self, name: str, **spec: Any) -> dict[str, Any]:
        spec = {"dataset": {"uri": self.train_uri, "targetColumn": TARGET}, "envFrom": S3_ENV, **spec}
        return {"apiVersion": API, "kind": "TrainingJob", "metadata": {"name": name}, "spec": spec}

    def gradient_boosting(self, name: str, **spec: Any) -> dict[str, Any]:
        """The churn classifier, registered and aliased champion on success."""
        return self.training_job(
            name,
            builtin={"algorithm": "gradient_boosting"},
            hyperparameters={"n_estimators": 40, "max_depth": 3},
            register={"modelName": self.model, "alias": "champion"},
            **spec,
        )

    def model_deployment(self, uri: str, **extra: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "model": {"uri": uri},
            "replicas": {"min": 1, "max": 3},
            "resources": {"cpu": "250m", "memory": "1Gi"},  # a rollout surge + 3 replicas fit 2 cores
            "payloadLogging": {"sinkUri": self.payloads, "sampleRate": 1.0},
            "registryPollSeconds": 5,
            "envFrom": S3_ENV,
            "env": [{"name": "KUBELOOP_SERVING_PAYLOAD_LOG_FLUSH_SECONDS", "value": "2"}],
            **extra,
        }
        return {"apiVersion": API, "kind": "ModelDeployment", "metadata": {"name": SERVER}, "spec": spec}

    def drift_monitor(self, challenge: dict[str, Any] | None = None) -> dict[str, Any]:
        """Check the last 1,000 requests against the training data; on drift retrain on the latest data.
        With `challenge`, the retrained model must beat the champion to be registered as challenger
        (and a canary following @challenger takes it from there); without, it becomes champion at once."""
        retrain = self.gradient_boosting("unused")["spec"] | {
            "dataset": {"uri": self.latest_uri, "targetColumn": TARGET}
        }
        if challenge is not None:
            retrain |= {"register": {"modelName": self.model, "alias": "challenger"}, "challenge": challenge}
        return {
            "apiVersion": API,
            "kind": "DriftMonitor",
            "metadata": {"name": MONITOR},
            "spec": {
                "target": {"modelDeployment": SERVER},
                "reference": {"uri": self.train_uri},
                "schedule": "0 0 1 1 *",  # forced on demand (kubectl create job --from=cronjob/...)
                "window": {"lastRows": 1000},
                "envFrom": S3_ENV,
                "action": {"type": "Retrain", "cooldownSeconds": 0, "trainingJobTemplate": {"spec": retrain}},
            },
        }


def churn_loop(platform: Platform, namespace: str) -> Loop:
    """A Loop in ``namespace`` with its own model name and 4,000 churn rows to train on in S3."""
    run = Loop(namespace, model=f"churn-{namespace}")
    platform.put_table(run.train_uri, churn_data(4000, 0.0, seed=1))
    return run


def check_now(platform: Platform, namespace: str, monitor: str, job: str) -> None:
    """Run a DriftMonitor's check at once (its schedule is far off): the Job `job` from its CronJob."""
    cronjobs = wait_for(
        lambda: platform.kubectl.items("cronjobs", namespace, f"kubeloop.io/driftmonitor={monitor}"),
        120,
        what=f"the check CronJob of {monitor}",
    )
    name = cronjobs[0]["metadata"]["name"]
    platform.kubectl.run("create", "job", "-n", namespace, job, f"--from=cronjob/{name}")


def serving_versions(platform: Platform, namespace: str) -> set[str]:
    """Model versions of the stable server pods that still exist (terminating ones included)."""
    selector = f"kubeloop.io/modeldeployment={SERVER},kubeloop.io/track=stable"
    pods = platform.kubectl.items("pods", namespace, selector)
    return {p["metadata"]["annotations"]["kubeloop.io/model-version"] for p in pods}


def get(url: str) -> dict[str, Any]:
    return answer_of(urllib.request.Request(url))


def post(url: str, body: bytes) -> dict[str, Any]:
    return answer_of(urllib.request.Request(url, body, {"Content-Type": "application/json"}))


def answer_of(request: urllib.request.Request) -> dict[str, Any]:
    """The JSON answer; an error status raises `HTTPError` whose message carries the answer's body (which
    names what refused, e.g. the model a server serves) and whose `read()` still gives that body."""
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer: dict[str, Any] = json.load(response)
            return answer
    except urllib.error.HTTPError as error:
        body = error.read()
        text = body[:600].decode(errors="replace")
        reason = f"{error.reason}; {request.get_method()} {request.full_url} answered: {text}"
        raise urllib.error.HTTPError(error.url, error.code, reason, error.headers, io.BytesIO(body)) from None


def infer_body(base: str, rows: int, shift: float, seed: int) -> bytes:
    """An OIP request of `rows` customers, under the input name the ONNX exporter chose."""
    name = get(f"{base}/v2/models/{SERVER}")["inputs"][0]["name"]
    matrix = feature_matrix(churn_data(rows, shift, seed))
    tensor = {"name": name, "shape": list(matrix.shape), "datatype": "FP32", "data": matrix.ravel().tolist()}
    return orjson.dumps({"inputs": [tensor]})


def ready_with_version(version: str) -> Any:
    """A status check: Ready, serving registry version `version`."""

    def check(status: dict[str, Any]) -> bool:
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
        return ready and (status.get("model") or {}).get("version") == version

    return check


def ready_replicas(count: int) -> Any:
    """A status check for ModelDeployments: Ready, with `count` ready stable pods."""

    def check(status: dict[str, Any]) -> bool:
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
        return ready and status.get("readyReplicas") == count

    return check


def deploy_model(
    platform: Platform, namespace: str, name: str, model: Path, replicas: int, **spec: Any
) -> None:
    """`model` uploaded to S3 and served by a ModelDeployment `name` (250m, 512Mi, fixed `replicas`,
    other `spec` fields as given), once its `replicas` pods are ready."""
    uri = f"s3://kubeloop/models/{namespace}/{name}.onnx"
    with platform.s3().open(uri, "wb") as sink:
        sink.write(model.read_bytes())
    spec = {
        "model": {"uri": uri},
        "replicas": {"min": replicas, "max": replicas},
        "resources": {"cpu": "250m", "memory": "512Mi"},
        "envFrom": S3_ENV,
        **spec,
    }
    manifest = {"apiVersion": API, "kind": "ModelDeployment", "metadata": {"name": name}, "spec": spec}
    platform.apply(manifest, namespace)
    ready = ready_replicas(replicas)
    platform.wait_status("ModelDeployment", name, namespace, ready, 600, f"{replicas} ready pods")


def succeeded(status: dict[str, Any]) -> bool:
    """A status check for TrainingJobs; a Failed phase fails at once with its conditions."""
    assert status.get("phase") != "Failed", f"training failed: {status.get('conditions')}"
    return status.get("phase") == "Succeeded"


def checks_line(checks: list[dict[str, Any]]) -> str:
    """A rollout's last checks (status ``CheckResult``s) as one line: name, value, bound, verdict."""
    verdicts = {True: "passed", False: "FAILED", None: "not measured"}
    return ", ".join(
        f"{c['name']} {'-' if c.get('value') is None else format(c['value'], '.4g')} "
        f"(max {c['threshold']:g}) {verdicts[c.get('passed')]}"
        for c in checks
    )


def metrics_line(metrics: dict[str, float]) -> str:
    """A TrainingJob's metrics (its status ``metrics``) by name, four significant digits."""
    return ", ".join(f"{name} {value:.4g}" for name, value in sorted(metrics.items()))
