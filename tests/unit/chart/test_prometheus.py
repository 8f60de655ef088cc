"""The chart's optional Prometheus (`prometheus.enabled`): what it renders, its rights, its scrape
configuration checked by the real promtool of the Prometheus version we run, and the operator wired to it."""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeloop.api.deployment import ModelDeploymentSpec
from kubeloop_operator.render.serving import render_serving
from kubeloop_operator.settings import OperatorSettings
from tests.unit.chart.helm import (
    ALL_ON,
    ROOT,
    Manifest,
    find,
    kubeconform,
    one,
    operator_env,
    render,
    template_text,
)
from tests.unit.operator.conftest import owner_of

pytestmark = pytest.mark.unit

ON = {"prometheus": {"enabled": True}}
URL = "KUBELOOP_OPERATOR_PROMETHEUS_URL"


@functools.cache
def promtool() -> Path:
    """promtool of the Prometheus the chart runs (hack/build-addons.sh: cached, built if missing).
    Debian's promtool cannot be used: Debian builds Prometheus without Kubernetes service discovery."""
    out = subprocess.run(
        [ROOT / "hack/build-addons.sh", "prometheus"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.split()[1]).parent / "promtool"


def ours(manifests: list[Manifest]) -> list[Manifest]:
    return [
        m
        for m in manifests
        if m["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "prometheus"
    ]


def config_of(manifests: list[Manifest]) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        one(manifests, "ConfigMap", "prometheus")["data"]["prometheus.yml"]
    )
    return loaded


def promtool_check(manifests: list[Manifest], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`promtool check config` of the ConfigMap's keys as files of one directory, as the pod mounts them
    (the rule files it names are checked too)."""
    for key, text in one(manifests, "ConfigMap", "prometheus")["data"].items():
        (tmp_path / key).write_text(text)
    return subprocess.run(
        [str(promtool()), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_off_by_default_and_the_operator_gets_no_url() -> None:
    manifests = render()
    assert ours(manifests) == []
    assert URL not in operator_env(manifests)


def test_on_renders_a_server_its_service_config_and_identity() -> None:
    manifests = render(ON)
    assert sorted(m["kind"] for m in ours(manifests)) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "ServiceAccount",
    ]
    deployment = one(manifests, "Deployment", "prometheus")
    pod = deployment["spec"]["template"]
    service = one(manifests, "Service", "prometheus")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [{"name": "http", "port": 9090, "targetPort": "http"}]
    container = pod["spec"]["containers"][0]
    assert container["ports"] == [{"name": "http", "containerPort": 9090}]
    assert (
        pod["spec"]["serviceAccountName"]
        == one(manifests, "ServiceAccount", "prometheus")["metadata"]["name"]
    )
    assert container["image"] == "quay.io/prometheus/prometheus:v3.5.1"
    assert "command" not in container, "the image's own entry point: upstream's and ours differ in path"
    # Where the flags point is where the volumes are.
    args = dict(a.removeprefix("--").split("=", 1) for a in container["args"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert args["config.file"] == mounts["config"] + "/prometheus.yml"
    assert args["storage.tsdb.path"] == mounts["data"]
    assert (args["storage.tsdb.retention.time"], args["storage.tsdb.retention.size"]) == ("6h", "1GB")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["data"]["emptyDir"] == {"sizeLimit": "2Gi"}
    assert (
        volumes["config"]["configMap"]["name"]
        == one(manifests, "ConfigMap", "prometheus")["metadata"]["name"]
    )
    checksum = pod["metadata"]["annotations"]["kubeloop.io/config-sha256"]
    other = one(render({"prometheus": {"enabled": True, "scrapeInterval": "7s"}}), "Deployment", "prometheus")
    assert other["spec"]["template"]["metadata"]["annotations"]["kubeloop.io/config-sha256"] != checksum, (
        "a changed configuration rolls the pod"
    )


@pytest.mark.parametrize("files", [(), (ALL_ON,)], ids=["default", "all-on"])
def test_restricted_pod_security_standard_and_resources(files: tuple[Path, ...]) -> None:
    pod = one(render(ON, *files), "Deployment", "prometheus")["spec"]["template"]["spec"]
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] in (65532, 4000)
    assert security["fsGroup"] == security["runAsUser"], "the emptyDir volumes are writable by the user"
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    assert {p["httpGet"]["path"] for p in (container["readinessProbe"], container["livenessProbe"])} == {
        "/-/ready",
        "/-/healthy",
    }


def test_rbac_lists_and_watches_pods_and_nothing_else() -> None:
    manifests = render(ON)
    role = one(manifests, "ClusterRole", "prometheus")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]
    binding = one(manifests, "ClusterRoleBinding", "prometheus")
    account = one(manifests, "ServiceAccount", "prometheus")["metadata"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]
    assert find(ours(manifests), "Role") == []
    assert not any(m["kind"] == "Secret" for m in ours(manifests))


def test_exact_watched_namespaces_get_roles_there_and_discovery_looks_only_there() -> None:
    manifests = render({**ON, "operator": {"watchNamespaces": ["ml-a", "ml-b"]}})
    roles = find(ours(manifests), "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["ml-a", "ml-b"]
    assert all(
        r["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}] for r in roles
    )
    bindings = find(ours(manifests), "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["ml-a", "ml-b"]
    assert find(ours(manifests), "ClusterRole") == [] and find(ours(manifests), "ClusterRoleBinding") == []
    (sd,) = config_of(manifests)["scrape_configs"][0]["kubernetes_sd_configs"]
    assert sd["namespaces"] == {"names": ["ml-a", "ml-b"]}, "discovery needs no rights beyond the Roles"
    # kopf patterns cannot be Role namespaces: cluster-wide, discovery everywhere.
    patterned = render({**ON, "operator": {"watchNamespaces": ["team-*"]}})
    assert one(patterned, "ClusterRole", "prometheus") and find(ours(patterned), "Role") == []
    assert "namespaces" not in config_of(patterned)["scrape_configs"][0]["kubernetes_sd_configs"][0]


def test_the_operator_points_at_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    manifests = render(ON, namespace="ops", release="ml")
    service = one(manifests, "Service", "prometheus")
    port = service["spec"]["ports"][0]["port"]
    expected = f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc:{port}"
    env = operator_env(manifests)
    assert env[URL] == expected == "http://ml-kubeloop-prometheus.ops.svc:9090"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert OperatorSettings().prometheus_url == expected, "the operator reads it"
    explicit = "http://prometheus-operated.monitoring.svc:9090"
    for values in (
        {**ON, "operator": {"settings": {"prometheusUrl": explicit}}},
        {"operator": {"settings": {"prometheusUrl": explicit}}},
    ):
        assert operator_env(render(values))[URL] == explicit, "an explicit URL wins, with or without ours"


def test_scrape_config_passes_promtool(tmp_path: Path) -> None:
    for values in (ON, {**ON, "operator": {"watchNamespaces": ["ml-a", "ml-b"]}}):
        result = promtool_check(render(values), tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
    result = promtool_check(render(None, ALL_ON), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_refuses_a_bad_config(tmp_path: Path) -> None:
    """The check can fail: a timeout longer than the interval is refused by Prometheus."""
    result = promtool_check(render({"prometheus": {"enabled": True, "scrapeTimeout": "30s"}}), tmp_path)
    assert result.returncode != 0
    assert "scrape timeout greater than scrape interval" in result.stdout + result.stderr


def relabel(rules: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, str] | None:
    """Prometheus's relabelling for the actions the chart uses (keep, drop, replace): None when dropped."""
    labels = dict(labels)
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(name, "") for name in rule["source_labels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if (action == "keep" and not match) or (action == "drop" and match):
            return None
        if action == "replace" and match:
            labels[rule["target_label"]] = match.expand(rule.get("replacement", r"\1").replace("$1", r"\1"))
    return {k: v for k, v in labels.items() if not k.startswith("__meta_")}


def discovered(pod_template: dict[str, Any], namespace: str, phase: str = "Running") -> list[dict[str, str]]:
    """What Kubernetes service discovery (role pod) gives per container port of a pod."""
    meta = {
        f"__meta_kubernetes_pod_label_{re.sub('[^a-zA-Z0-9_]', '_', k)}": v
        for k, v in pod_template["metadata"]["labels"].items()
    }
    meta |= {
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_pod_name": "p-1",
        "__meta_kubernetes_pod_phase": phase,
    }
    return [
        {
            **meta,
            "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
            "__address__": f"10.0.0.1:{port['containerPort']}",
        }
        for container in pod_template["spec"]["containers"]
        for port in container.get("ports", [])
    ]


def test_scrape_config_keeps_the_servers_the_operator_renders_with_their_track() -> None:
    """The operator's own renderer makes the pods; the chart's selector and relabelling must find them."""
    (job,) = [j for j in config_of(render(ON))["scrape_configs"] if j["job_name"] == "kubeloop-servers"]
    selector = job["kubernetes_sd_configs"][0]["selectors"][0]["label"]
    spec = ModelDeploymentSpec.model_validate(
        {
            "model": {"uri": "models:/churn@champion"},
            "canary": {"model": {"uri": "models:/churn/9"}, "trafficPercent": 20},
        }
    )
    children = render_serving(owner_of("ModelDeployment", "churn"), spec, OperatorSettings())
    deployments = {
        d["metadata"]["labels"]["kubeloop.io/track"]: d for d in children if d["kind"] == "Deployment"
    }
    assert set(deployments) == {"stable", "canary"}
    for track, deployment in deployments.items():
        template = deployment["spec"]["template"]
        labels = template["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in (term.split("=") for term in selector.split(","))), labels
        targets = [
            t for t in (relabel(job["relabel_configs"], d) for d in discovered(template, "team-a")) if t
        ]
        assert len(targets) == 1, "one target per server pod"
        (target,) = targets
        assert {k: target[k] for k in ("namespace", "pod", "modeldeployment", "track")} == {
            "namespace": "team-a",
            "pod": "p-1",
            "modeldeployment": "churn",
            "track": track,
        }
        assert relabel(job["relabel_configs"], discovered(template, "team-a", "Succeeded")[0]) is None
    # Anything else the operator runs (a drift check, a trainer) is no target.
    other = {
        "metadata": {
            "labels": {"app.kubernetes.io/managed-by": "kubeloop", "kubeloop.io/component": "drift"}
        },
        "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]},
    }
    assert relabel(job["relabel_configs"], discovered(other, "team-a")[0]) is None


def test_operator_scraped_through_its_metrics_service() -> None:
    manifests = render(ON)
    jobs = {j["job_name"]: j for j in config_of(manifests)["scrape_configs"]}
    service = one(manifests, "Service", "operator-metrics")
    port = service["spec"]["ports"][0]["port"]
    assert jobs["kubeloop-operator"]["static_configs"] == [
        {"targets": [f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc:{port}"]}
    ]
    assert jobs["kubeloop-operator"]["honor_labels"] is True, "its series carry the resources' namespaces"
    off = config_of(render({"prometheus": {"enabled": True, "scrapeOperator": False}}))
    assert [j["job_name"] for j in off["scrape_configs"]] == ["kubeloop-servers"]
    refused = template_text({**ON, "metricsService": {"enabled": False}}, check=False)
    assert refused.returncode != 0 and "/metricsService/enabled" in refused.stderr


@pytest.mark.parametrize(
    "values",
    [ON, {**ON, "operator": {"watchNamespaces": ["ml-a", "ml-b"]}}],
    ids=["cluster-wide", "namespaces"],
)
def test_kubeconform(values: dict[str, Any]) -> None:
    report = kubeconform(template_text(values).stdout)
    kinds = {r["kind"] for r in report["resources"] if r["name"].endswith("prometheus")}
    assert {"Deployment", "Service", "ConfigMap", "ServiceAccount"} <= kinds
    summary = report["summary"]
    assert summary["invalid"] == summary["errors"] == summary["skipped"] == 0, report
    assert summary["valid"] == len(report["resources"])


def test_one_prometheus_version_everywhere() -> None:
    """The chart's default image, the local node's image and the promtool the tests use agree."""
    default = yaml.safe_load((ROOT / "charts/kubeloop/values.yaml").read_text())["prometheus"]["image"]["tag"]
    local = yaml.safe_load((ROOT / "hack/local-values.yaml").read_text())["prometheus"]["image"]["tag"]
    node = re.search(r"^PROMETHEUS_VERSION=(\S+)", (ROOT / "hack/kubelet/node.sh").read_text(), re.M)
    build = re.search(
        r'PROMETHEUS_VERSION="\$\{PROMETHEUS_VERSION:-(\S+)\}"', (ROOT / "hack/build-addons.sh").read_text()
    )
    assert node and build
    assert default == local == node.group(1) == build.group(1)
    version = subprocess.run([str(promtool()), "--version"], capture_output=True, text=True, check=True)
    assert f"version {default.removeprefix('v')} " in version.stdout + version.stderr
