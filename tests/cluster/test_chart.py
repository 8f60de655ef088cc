"""`helm install` of charts/kubeloop onto the local control plane, and its RBAC put to work: the real
operator runs with the chart's ServiceAccount token, the chart's flags and environment, reconciles all
three kinds, and is refused (403) everywhere its Roles do not reach."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeloop.api.summaries import TrainingSummary, encode
from tests.cluster.manifests import drift_monitor, model_deployment, training_job
from tests.cluster.test_drift import TEMPLATE, drifted_summary, run_check
from tests.cluster.test_training import exit_pod
from tests.fixtures.cluster import ROOT, Cluster, Kubectl, OperatorProcess, wait_for
from tests.fixtures.ports import free_port
from tests.unit.chart.helm import CHART, helm

pytestmark = pytest.mark.cluster

# Namespaced mode grants nothing cluster-wide. kopf still tries to list namespaces and watch CRDs,
# retries, then falls back to the exact namespaces it was given (documented; it logs warnings). Any
# other "Forbidden" in the operator's log means the chart grants too little.
KOPF_FALLBACKS = re.compile(
    r"Not enough permissions to (list namespaces|watch for)"
    r"|https://\S+/(api/v1/namespaces|apis/apiextensions\.k8s\.io/v1/customresourcedefinitions)(\?\S*)? -> "
)


def create_namespace(cluster: Cluster, prefix: str, labels: dict[str, str] | None = None) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl.run("create", "namespace", name)
    if labels:
        cluster.kubectl.run("label", "namespace", name, *(f"{k}={v}" for k, v in labels.items()))
    return name


@pytest.fixture
def release_namespace(crds: Cluster) -> Iterator[str]:
    """Where the release lives; it enforces the restricted Pod Security Standard."""
    restricted = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    name = create_namespace(crds, "kl-chart", restricted)
    yield name
    crds.kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def helm_cluster(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return helm(*args, check=check, env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)})


class Release:
    """One helm release of the chart; uninstalled (CRDs stay: helm never deletes them) at the end."""

    def __init__(self, cluster: Cluster, namespace: str, values: dict[str, Any], tmp: Path):
        self.cluster, self.namespace = cluster, namespace
        self.name = f"kl-{uuid.uuid4().hex[:6]}"
        self.values = tmp / f"{self.name}-values.yaml"
        self.values.write_text(yaml.safe_dump(values))

    def install(self) -> subprocess.CompletedProcess[str]:
        return helm_cluster(
            self.cluster,
            "install", self.name, str(CHART),
            "--namespace", self.namespace,
            "--values", str(self.values),
            "--wait", "--timeout", "3m",
        )  # fmt: skip

    def uninstall(self) -> None:
        helm_cluster(
            self.cluster, "uninstall", self.name, "--namespace", self.namespace, "--wait", check=False
        )

    @property
    def operator(self) -> str:
        return f"{self.name}-kubeloop-operator"


def test_install_default_values_under_restricted_pod_security(
    crds: Cluster, release_namespace: str, tmp_path: Path
) -> None:
    kubectl = crds.kubectl
    release = Release(crds, release_namespace, {}, tmp_path)
    installed = release.install()
    try:
        assert "kubectl get kubeloop" in installed.stdout, "NOTES tell the user what to do next"
        deployment = kubectl.get("deployment", release.operator, release_namespace)
        assert deployment is not None and deployment["status"].get("readyReplicas") == 1
        pods = kubectl.items("pods", release_namespace, "app.kubernetes.io/component=operator")
        assert len(pods) == 1, "admitted by the namespace's restricted Pod Security admission"
        assert kubectl.get("serviceaccount", release.operator, release_namespace)
        assert kubectl.get("service", f"{release.name}-kubeloop-operator-metrics", release_namespace)
        role = json.loads(kubectl.run("get", "clusterrole", release.operator, "-o", "json").stdout)
        assert role["metadata"]["labels"]["app.kubernetes.io/instance"] == release.name
        dashboards = kubectl.items("configmaps", release_namespace, "grafana_dashboard=1")
        assert len(dashboards) == 3
        status = helm_cluster(crds, "status", release.name, "--namespace", release_namespace, "-o", "json")
        assert json.loads(status.stdout)["info"]["status"] == "deployed"
    finally:
        release.uninstall()
    assert kubectl.run("get", "clusterrole", release.operator, check=False).returncode != 0
    assert kubectl.get("deployment", release.operator, release_namespace) is None
    for crd in ("trainingjobs", "modeldeployments", "driftmonitors"):
        assert kubectl.run("get", "crd", f"{crd}.kubeloop.io", check=False).returncode == 0, "CRDs stay"


def test_install_with_mlflow_wires_the_operator_to_it(
    crds: Cluster, release_namespace: str, tmp_path: Path
) -> None:
    values = {"mlflow": {"enabled": True, "persistence": {"enabled": False}}}
    release = Release(crds, release_namespace, values, tmp_path)
    release.install()
    try:
        mlflow = crds.kubectl.get("deployment", f"{release.name}-kubeloop-mlflow", release_namespace)
        assert mlflow is not None and mlflow["status"].get("readyReplicas") == 1
        service = crds.kubectl.get("service", f"{release.name}-kubeloop-mlflow", release_namespace)
        assert service is not None and service["spec"]["ports"][0]["port"] == 5000
        operator = crds.kubectl.get("deployment", release.operator, release_namespace)
        assert operator is not None
        env = {
            e["name"]: e.get("value") for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        expected = f"http://{release.name}-kubeloop-mlflow.{release_namespace}.svc:5000"
        assert env["KUBELOOP_OPERATOR_MLFLOW_TRACKING_URI"] == expected
    finally:
        release.uninstall()


class ServiceAccountClient:
    """The chart's ServiceAccount, as the operator in its pod would be: a token minted for it."""

    def __init__(self, cluster: Cluster, namespace: str, account: str, directory: Path):
        token = cluster.kubectl.run(
            "create", "token", account, "-n", namespace, "--duration=1h"
        ).stdout.strip()
        # flattened: the cluster's kubeconfig names its CA by path, a portable one embeds it
        flat = cluster.kubectl.run("config", "view", "--raw", "--flatten", "-o", "json").stdout
        server = json.loads(flat)["clusters"][0]["cluster"]
        self.server = server["server"]
        self.token = token
        self.ca = directory / "ca.crt"
        self.ca.write_bytes(base64.b64decode(server["certificate-authority-data"]))
        self.kubeconfig = directory / "operator.kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": server}],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [{"name": "operator", "context": {"cluster": "local", "user": account}}],
            "current-context": "operator",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))

    def status(self, method: str, path: str, body: dict[str, Any] | None = None) -> int:
        """The HTTP status the API server answers this token with."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.server + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Content-Type", "application/json")
        context = ssl.create_default_context(cafile=str(self.ca))
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)


class ChartOperator(OperatorProcess):
    """The operator exactly as the chart's Deployment runs it (command, flags, environment), with the
    ServiceAccount's token; only the ports move to free local ones."""

    def __init__(self, cluster: Cluster, deployment: dict[str, Any], kubeconfig: Path, log: Path):
        super().__init__(cluster, "", log)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["kubeloop", "operator"]
        self.health_port = free_port()
        self.args = [
            f"--liveness=http://127.0.0.1:{self.health_port}/healthz" if a.startswith("--liveness=") else a
            for a in container["args"]
        ]
        self.env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        self.env["KUBELOOP_OPERATOR_METRICS_PORT"] = str(self.metrics_port)
        self.kubeconfig = kubeconfig

    def start(self) -> ChartOperator:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBELOOP_OPERATOR_")}
        env.update(self.env, KUBECONFIG=str(self.kubeconfig))
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kubeloop", "operator", *self.args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        return self

    def healthy(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=5) as response:
            return bool(response.status == 200)

    def permission_errors(self, cluster_scope_refused: bool) -> list[str]:
        """Log lines about refused requests, less kopf's fallbacks where cluster scope is refused."""
        lines = self.log.read_text(errors="replace").splitlines()
        return [
            line
            for line in lines
            if ("Forbidden" in line or "forbidden" in line or " 403" in line)
            and not (cluster_scope_refused and KOPF_FALLBACKS.search(line))
        ]


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


def reconcile_all_three_kinds(kubectl: Kubectl, ns: str) -> None:
    """Every API call the operator makes, exercised: apply, get, list, watch, delete, create, status."""
    kubectl.apply(model_deployment("serve"), ns)
    kubectl.apply(training_job("train"), ns)
    kubectl.apply(training_job("edit"), ns)
    action = {"type": "Retrain", "cooldownSeconds": 3600, "trainingJobTemplate": TEMPLATE}
    kubectl.apply(drift_monitor(action=action), ns)

    ready = wait_for(
        lambda: condition(kubectl.get("modeldeployment", "serve", ns), "Ready").get("status") == "True",
        120,
        what="ModelDeployment Ready",
    )
    assert ready
    for kind in ("deployment", "service", "hpa", "pdb"):
        assert kubectl.get(kind, "serve", ns), kind

    wait_for(lambda: kubectl.get("job", "train", ns), 60, what="the TrainingJob's Job")
    exit_pod(kubectl, ns, "train", 0, encode(TrainingSummary(metrics={"f1": 0.9})))
    wait_for(
        lambda: (
            ((kubectl.get("trainingjob", "train", ns) or {}).get("status") or {}).get("phase") == "Succeeded"
        ),
        60,
        what="TrainingJob Succeeded",
    )

    first = wait_for(lambda: kubectl.get("job", "edit", ns), 60, what="the second Job")
    kubectl.apply(training_job("edit", image="example.com/trainer:2"), ns)  # Job templates are immutable

    def replaced() -> bool:
        job = kubectl.get("job", "edit", ns)
        return job is not None and job["metadata"]["uid"] != first["metadata"]["uid"]

    wait_for(replaced, 120, interval=1, what="the Job replaced (deleted and created again)")

    wait_for(lambda: kubectl.get("cronjob", "watch-check", ns), 60, what="the drift CronJob")
    wait_for(
        lambda: condition(kubectl.get("driftmonitor", "watch", ns), "Ready").get("status") == "True",
        60,
        what="DriftMonitor Ready",
    )
    run_check(kubectl, ns, "check-1", drifted_summary())
    monitor = wait_for(
        lambda: (
            (m := kubectl.get("driftmonitor", "watch", ns))
            and m["status"].get("lastCheckJob") == "check-1"
            and m
        ),
        60,
        what="the drift check in status",
    )
    retrain = monitor["status"]["lastTriggeredTrainingJob"]
    wait_for(lambda: kubectl.get("job", retrain, ns), 60, what="the retrain's Job")

    canary = {"model": {"uri": "models:/churn/2"}, "trafficPercent": 50}
    kubectl.apply(model_deployment("serve", canary=canary), ns)
    wait_for(lambda: kubectl.get("deployment", "serve-canary", ns), 60, what="the canary Deployment")
    kubectl.apply(model_deployment("serve"), ns)  # apply drops the canary it applied before
    wait_for(lambda: kubectl.get("deployment", "serve-canary", ns) is None, 60, what="the canary pruned")

    events = kubectl.run(
        "get", "events", "-n", ns, "--field-selector", "involvedObject.name=train", "-o", "name"
    )
    assert events.stdout.strip(), "the operator posted Events"


def refused_everywhere_else(client: ServiceAccountClient, ns: str, other: str, namespaced: bool) -> None:
    clusterrole = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"kl-escalate-{uuid.uuid4().hex[:6]}"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "x"},
        "spec": {"containers": [{"name": "x", "image": "x"}]},
    }
    refused = {
        "list secrets": client.status("GET", f"/api/v1/namespaces/{ns}/secrets"),
        "read a secret": client.status("GET", f"/api/v1/namespaces/{ns}/secrets/any"),
        "list configmaps": client.status("GET", f"/api/v1/namespaces/{ns}/configmaps"),
        "create a ClusterRole": client.status(
            "POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", clusterrole
        ),
        "create a pod": client.status("POST", f"/api/v1/namespaces/{ns}/pods", pod),
        "get one pod (only list is granted)": client.status("GET", f"/api/v1/namespaces/{ns}/pods/x"),
        "delete the namespace": client.status("DELETE", f"/api/v1/namespaces/{ns}"),
        "read another CRD": client.status(
            "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/trainingjobs.kubeloop.io"
        ),
    }
    if namespaced:
        refused |= {
            "list ModelDeployments in another namespace": client.status(
                "GET", f"/apis/kubeloop.io/v1alpha1/namespaces/{other}/modeldeployments"
            ),
            "create a ModelDeployment in another namespace": client.status(
                "POST",
                f"/apis/kubeloop.io/v1alpha1/namespaces/{other}/modeldeployments",
                model_deployment("x"),
            ),
            "list Jobs in another namespace": client.status("GET", f"/apis/batch/v1/namespaces/{other}/jobs"),
            "list CRDs (cluster-scoped)": client.status(
                "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
            ),
        }
    assert {what: code for what, code in refused.items() if code != 403} == {}, "each must be 403"
    allowed = {
        "list ModelDeployments where it works": client.status(
            "GET", f"/apis/kubeloop.io/v1alpha1/namespaces/{ns}/modeldeployments"
        ),
        "list pods where it works": client.status("GET", f"/api/v1/namespaces/{ns}/pods"),
    }
    assert set(allowed.values()) == {200}, allowed
    if not namespaced:
        monitors_crd = (
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/servicemonitors.monitoring.coreos.com"
        )
        assert client.status("GET", monitors_crd) == 404, "allowed by name (and absent here)"


@pytest.mark.parametrize("namespaced", [False, True], ids=["clusterrole", "namespaced-roles"])
def test_chart_rbac_is_enough_for_the_operator_and_no_more(
    crds: Cluster, release_namespace: str, tmp_path: Path, namespaced: bool
) -> None:
    kubectl = crds.kubectl
    watched = create_namespace(crds, "kl-rbac")
    other = create_namespace(crds, "kl-other")
    values = {"operator": {"watchNamespaces": [watched]}, "rbac": {"namespaced": namespaced}}
    release = Release(crds, release_namespace, values, tmp_path)
    operator: ChartOperator | None = None
    try:
        release.install()
        kinds = {"Role", "RoleBinding"} if namespaced else {"ClusterRole", "ClusterRoleBinding"}
        manifest = helm_cluster(crds, "get", "manifest", release.name, "-n", release_namespace).stdout
        rendered = {d["kind"] for d in yaml.safe_load_all(manifest) if d}
        assert kinds <= rendered and not ({"Role", "ClusterRole"} - kinds) & rendered
        deployment = kubectl.get("deployment", release.operator, release_namespace)
        assert deployment is not None
        with tempfile.TemporaryDirectory() as directory:
            client = ServiceAccountClient(crds, release_namespace, release.operator, Path(directory))
            operator = ChartOperator(crds, deployment, client.kubeconfig, tmp_path / "operator.log").start()
            wait_for(operator.healthy, 60, what="kopf's liveness endpoint (the chart's probe)")
            reconcile_all_three_kinds(kubectl, watched)
            refused_everywhere_else(client, watched, other, namespaced)
            assert operator.metric("kubeloop_operator_reconciles_total", kind="DriftMonitor", result="ok")
            assert operator.permission_errors(namespaced) == [], "the chart grants all the operator calls"
            kubectl.run(
                "delete", "modeldeployments,trainingjobs,driftmonitors", "--all", "-n", watched,
                "--wait=true", "--timeout=120s",
            )  # fmt: skip
    finally:
        if operator is not None:
            operator.kill(signal.SIGTERM)
            print(f"\n--- chart operator log tail ---\n{operator.tail()}")
        release.uninstall()
        for ns in (watched, other):
            kubectl.run("delete", "namespace", ns, "--wait=false", check=False)
