"""Canary analysis on a real API server (kwok nodes) with a real operator process and a real
Prometheus: the operator walks the steps, writes the weight to the routes ConfigMap only, and
promotes or rolls back from what Prometheus answers.

What this shows and what it does not: on kwok no server runs, so the servers' metrics come from a
real /metrics endpoint in this process (prometheus_client) that counts requests per track as the
scenario says (healthy, answering 5xx, too quiet); Prometheus scrapes it with the namespace label the
cluster's discovery would add. Traffic splitting by real servers is the end-to-end tier's to show.
"""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from kubeloop.mlflow_client import connect
from tests.cluster.manifests import model_deployment, with_change
from tests.fixtures.cluster import Cluster, Kubectl, OperatorProcess, wait_for
from tests.fixtures.mlflow_server import MlflowServer
from tests.fixtures.ports import free_port
from tests.fixtures.prometheus import Prometheus

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        shutil.which("prometheus") is None, reason="Debian's prometheus: hack/install-system.sh"
    ),
]
STABLE_URI, CANARY_URI = "s3://models/churn-1.onnx", "s3://models/churn-2.onnx"
CHECKS = {"maxErrorRate": 0.05, "maxOutputPsi": 0.2}
ANALYSIS = {
    "steps": [20, 50],
    "intervalSeconds": 3,
    "warmupSeconds": 0,
    "minRequests": 10,
    "checks": CHECKS,
}
# per tick (0.1 s): (stable requests, canary requests, canary 5xx, canary seconds, canary classes)
PROFILES = {
    "healthy": (8, 2, 0, 0.01, 2),
    "failing": (8, 2, 1, 0.01, 2),
    "slow": (8, 2, 0, 3.0, 2),
    "different": (8, 2, 0, 0.01, 1),  # the canary predicts class 0 only, stable 0 and 1 alike
    "quiet": (8, 0, 0, 0.01, 2),
}


@dataclass
class Servers:
    """The metrics the stable and canary servers of each ModelDeployment would export, counted at a
    steady rate in a thread: model name -> profile."""

    profiles: dict[str, str]
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    port: int = field(default_factory=free_port)
    stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Servers:
        labels = ["model", "version", "track"]
        self.requests = Counter(
            "kubeloop_serving_requests", "Requests.", [*labels, "code"], registry=self.registry
        )
        self.duration = Histogram(
            "kubeloop_serving_request_duration_seconds", "Latency.", labels, registry=self.registry
        )
        self.classes = Counter(
            "kubeloop_serving_predicted_class", "Classes.", [*labels, "class"], registry=self.registry
        )
        self.server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        threading.Thread(target=self.run, daemon=True).start()
        return self

    def run(self) -> None:
        while not self.stopped.wait(0.1):
            for model, profile in list(self.profiles.items()):
                stable, canary, failing, seconds, classes = PROFILES[profile]
                self.serve(model, "stable", stable, 0, 0.01, 2)
                self.serve(model, "canary", canary, failing, seconds, classes)

    def serve(self, model: str, track: str, count: int, failing: int, seconds: float, classes: int) -> None:
        version = "1" if track == "stable" else "2"
        self.requests.labels(model, version, track, "200").inc(count - failing)
        self.requests.labels(model, version, track, "500").inc(failing)
        for i in range(count):
            self.duration.labels(model, version, track).observe(seconds)
            self.classes.labels(model, version, track, str(i % classes)).inc()

    def stop(self) -> None:
        self.stopped.set()
        self.server.shutdown()


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    running = Servers({}).start()
    yield running
    running.stop()


@pytest.fixture
def canary_namespace(crds: Cluster) -> Iterator[str]:
    name = f"kl-canary-{uuid.uuid4().hex[:6]}"
    crds.kubectl.run("create", "namespace", name)
    yield name
    crds.kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def prometheus(servers: Servers, canary_namespace: str, tmp_path: Path) -> Iterator[Prometheus]:
    target = {
        "static_configs": [
            {"targets": [f"127.0.0.1:{servers.port}"], "labels": {"namespace": canary_namespace}}
        ]
    }
    running = Prometheus(tmp_path, {"servers": target}).start()
    yield running
    running.stop()


def start_operator(crds: Cluster, prometheus: Prometheus, log: Path, **env: str) -> OperatorProcess:
    settings = {
        "KUBELOOP_OPERATOR_PROMETHEUS_URL": prometheus.url,
        "KUBELOOP_OPERATOR_ROLLOUT_POLL_SECONDS": "1",
        "KUBELOOP_OPERATOR_ROUTES_PROPAGATION_SECONDS": "2",
        **env,
    }
    return OperatorProcess(crds, "kl-canary-*", log, settings).start()


@pytest.fixture
def canary_operator(crds: Cluster, prometheus: Prometheus, tmp_path: Path) -> Iterator[OperatorProcess]:
    process = start_operator(crds, prometheus, tmp_path / "operator.log")
    yield process
    process.kill()
    print(f"\n--- operator log tail ---\n{process.tail()}")


class Watch:
    """Every rollout state seen while polling, for asserting on the walk afterwards."""

    def __init__(self, kubectl: Kubectl, namespace: str, name: str) -> None:
        self.kubectl, self.namespace, self.name = kubectl, namespace, name
        self.seen: list[tuple[str, int, int, int]] = []  # (phase, step, status weight, routes weight)

    def poll(self) -> dict[str, Any]:
        obj = self.kubectl.get("modeldeployment", self.name, self.namespace) or {}
        rollout: dict[str, Any] = (obj.get("status") or {}).get("rollout") or {}
        state = (
            rollout.get("phase", ""),
            rollout.get("step", 0),
            rollout.get("weight", 0),
            routes_weight(self),
        )
        if not self.seen or self.seen[-1] != state:
            self.seen.append(state)
        return obj

    def until(self, phase: str, timeout: float = 180) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            obj = self.poll()
            return obj if ((obj.get("status") or {}).get("rollout") or {}).get("phase") == phase else None

        return wait_for(reached, timeout, interval=0.2, what=f"rollout {phase}; seen {self.seen}")

    def weights(self) -> list[int]:
        out: list[int] = []
        for _, _, _, weight in self.seen:
            if not out or out[-1] != weight:
                out.append(weight)
        return out


def routes_weight(watch: Watch) -> int:
    config = watch.kubectl.get("configmap", f"{watch.name}-routes", watch.namespace)
    if not config:
        return 0
    routes = json.loads(config["data"]["routes.json"])
    return int((routes.get("canary") or {}).get("weight_percent", 0))


def canary_md(name: str, analysis: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    canary = {"model": {"uri": CANARY_URI}, "analysis": analysis or ANALYSIS}
    return model_deployment(
        name, model={"uri": STABLE_URI}, replicas={"min": 2, "max": 4}, canary=canary, **spec
    )


def template_of(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    deployment = kubectl.get("deployment", name, namespace)
    assert deployment is not None
    found: dict[str, Any] = deployment["spec"]["template"]
    return found


def model_uri(template: dict[str, Any]) -> str:
    env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0]["env"]}
    return str(env["KUBELOOP_SERVING_MODEL_URI"])


def events(kubectl: Kubectl, namespace: str, name: str) -> list[tuple[str, str, str]]:
    items = kubectl.items("events", namespace)
    return [
        (e.get("type", ""), e.get("reason", ""), e.get("message", ""))
        for e in items
        if e.get("involvedObject", {}).get("name") == name
    ]


def test_a_healthy_canary_walks_the_steps_and_is_promoted(
    canary_operator: OperatorProcess, canary_namespace: str, servers: Servers
) -> None:
    kubectl, ns = canary_operator.cluster.kubectl, canary_namespace
    servers.profiles["good"] = "healthy"
    kubectl.apply(canary_md("good"), ns)
    watch = Watch(kubectl, ns, "good")
    wait_for(lambda: kubectl.get("deployment", "good", ns), 60, what="the stable Deployment")
    stable_before = template_of(kubectl, ns, "good")
    watch.until("Progressing")
    status = watch.until("Promoted")["status"]
    assert watch.weights()[-3:] == [20, 50, 0], watch.seen
    assert status["promotedModel"] == {"uri": CANARY_URI, "replaces": STABLE_URI}
    assert {c["name"]: c["passed"] for c in status["rollout"]["checks"]} == {
        "errorRate": True,
        "outputPsi": True,
    }
    stable_after = template_of(kubectl, ns, "good")
    assert model_uri(stable_before) == STABLE_URI and model_uri(stable_after) == CANARY_URI
    wait_for(
        lambda: (kubectl.get("deployment", "good-canary", ns) or {}).get("spec", {}).get("replicas") == 0,
        30,
        what="the canary scaled to 0 once the routes have propagated",
    )
    reasons = [e[1] for e in events(kubectl, ns, "good")]
    assert "StepStarted" in reasons and "Promoting" in reasons and "Promoted" in reasons
    columns = kubectl.run("get", "mdep", "good", "-n", ns).stdout
    assert "WEIGHT" in columns and "ROLLOUT" in columns and "Promoted" in columns


@pytest.mark.parametrize(
    ("profile", "check"),
    [("failing", "errorRate"), ("slow", "p99Seconds"), ("different", "outputPsi")],
)
def test_a_bad_canary_is_rolled_back_at_the_first_step_naming_the_check(
    canary_operator: OperatorProcess,
    canary_namespace: str,
    servers: Servers,
    profile: str,
    check: str,
) -> None:
    kubectl, ns = canary_operator.cluster.kubectl, canary_namespace
    name = f"bad-{profile}"
    servers.profiles[name] = profile
    analysis = {**ANALYSIS, "checks": {**CHECKS, "maxP99Seconds": 1.0}}
    kubectl.apply(canary_md(name, analysis), ns)
    watch = Watch(kubectl, ns, name)
    wait_for(lambda: kubectl.get("deployment", name, ns), 60, what="the stable Deployment")
    stable_before = template_of(kubectl, ns, name)
    status = watch.until("RolledBack")["status"]
    assert watch.weights()[-2:] == [20, 0] and status["rollout"]["step"] == 1, watch.seen
    failed = [c for c in status["rollout"]["checks"] if c["passed"] is False]
    assert [c["name"] for c in failed] == [check], status["rollout"]["checks"]
    if check == "errorRate":
        assert failed[0]["value"] == pytest.approx(0.5, abs=0.05)
    if check == "p99Seconds":  # the 3 s answers' bucket is (2.5, 5]: Prometheus interpolates in it
        assert 2.5 < failed[0]["value"] <= 5.0
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "RolledBack")
    assert check in progressing["message"]
    assert template_of(kubectl, ns, name) == stable_before, "stable untouched"
    assert "promotedModel" not in status
    warnings = [e for e in events(kubectl, ns, name) if e[:2] == ("Warning", "RolledBack")]
    assert warnings and check in warnings[0][2] and "step 1" in warnings[0][2]


def test_too_little_canary_traffic_is_held_inconclusive(
    canary_operator: OperatorProcess, canary_namespace: str, servers: Servers
) -> None:
    kubectl, ns = canary_operator.cluster.kubectl, canary_namespace
    servers.profiles["quiet"] = "quiet"
    kubectl.apply(canary_md("quiet"), ns)
    watch = Watch(kubectl, ns, "quiet")
    status = watch.until("Inconclusive")["status"]
    assert status["rollout"]["step"] == 1 and routes_weight(watch) == 20
    assert "fewer than minRequests 10" in status["rollout"]["message"]
    # paused: the weight is held; then abort: weight 0, as a rollback
    kubectl.apply(with_change(canary_md("quiet"), "canary.paused", True), ns)
    watch.until("Paused")
    # held at 20 (a moment at 0 is the readiness gate: kwok may replace the canary's pod meanwhile)
    wait_for(lambda: routes_weight(watch) == 20, 60, what="weight 20 held while paused")
    kubectl.apply(with_change(canary_md("quiet"), "canary.abort", True), ns)
    watch.until("Aborted")
    wait_for(lambda: routes_weight(watch) == 0, 30, what="weight 0 after abort")


def test_the_api_server_refuses_steps_that_do_not_increase(crds: Cluster, canary_namespace: str) -> None:
    bad = canary_md("steps", {**ANALYSIS, "steps": [50, 20]})
    done = crds.kubectl.run("apply", "-n", canary_namespace, "-f", "-", stdin=json.dumps(bad), check=False)
    assert done.returncode != 0 and "steps must be strictly increasing" in done.stderr
    both = with_change(canary_md("both"), "canary.trafficPercent", 10)
    done = crds.kubectl.run("apply", "-n", canary_namespace, "-f", "-", stdin=json.dumps(both), check=False)
    assert done.returncode != 0 and "exactly one of trafficPercent" in done.stderr


@pytest.mark.mlflow
def test_promotion_moves_the_alias_stable_follows(
    crds: Cluster,
    prometheus: Prometheus,
    mlflow_server: MlflowServer,
    canary_namespace: str,
    servers: Servers,
    tmp_path: Path,
) -> None:
    from tests.cluster.test_registry import register_version

    tracking = mlflow_server.tracking_uri
    champion = register_version(tracking, "canary-churn", tmp_path, "champion")
    challenger = register_version(tracking, "canary-churn", tmp_path, "challenger")
    operator = start_operator(
        crds, prometheus, tmp_path / "operator.log", KUBELOOP_OPERATOR_MLFLOW_TRACKING_URI=tracking
    )
    try:
        kubectl, ns = crds.kubectl, canary_namespace
        servers.profiles["alias"] = "healthy"
        md = canary_md("alias")
        md["spec"]["model"] = {"uri": "models:/canary-churn@champion"}
        md["spec"]["canary"]["model"] = {"uri": "models:/canary-churn@challenger"}
        kubectl.apply(md, ns)
        status = Watch(kubectl, ns, "alias").until("Promoted")["status"]
        client = connect(tracking)
        assert client.get_model_version_by_alias("canary-churn", "champion").version == challenger != champion
        assert status["rollout"]["aliasMoved"] is True and "promotedModel" not in status
        assert status["model"]["version"] == challenger
        assert model_uri(template_of(kubectl, ns, "alias")) == f"models:/canary-churn/{challenger}"
    finally:
        operator.kill()
