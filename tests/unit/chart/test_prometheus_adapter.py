"""The chart's optional prometheus-adapter (`prometheusAdapter.enabled`): the custom metrics API the
in-flight HPA reads. What it renders, its rights (list pods, plus what an aggregated API server needs),
the restricted Pod Security Standard, where it points, and its rule serving the servers' gauge under the
name the operator's HPA asks for."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeloop.api.deployment import ModelDeploymentSpec
from kubeloop.contracts.autoscaling import CUSTOM_METRICS_API, INFLIGHT_METRIC
from kubeloop_operator.render.serving import render_serving
from kubeloop_operator.settings import OperatorSettings
from tests.unit.chart.helm import (
    ALL_ON,
    CHART,
    ROOT,
    Manifest,
    find,
    helm,
    kubeconform,
    render,
    template_text,
)
from tests.unit.operator.conftest import owner_of

pytestmark = pytest.mark.unit

ON = {"prometheus": {"enabled": True}, "prometheusAdapter": {"enabled": True}}
COMPONENT = "prometheus-adapter"


def ours(manifests: list[Manifest]) -> list[Manifest]:
    return [
        m
        for m in manifests
        if m["metadata"].get("labels", {}).get("app.kubernetes.io/component") == COMPONENT
    ]


def adapter(manifests: list[Manifest], kind: str) -> Manifest:
    found = [m for m in ours(manifests) if m["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(manifests: list[Manifest]) -> Manifest:
    spec: Manifest = adapter(manifests, "Deployment")["spec"]["template"]["spec"]
    (only,) = spec["containers"]
    found: Manifest = only
    return found


def args(manifests: list[Manifest]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in container(manifests)["args"])


def rule(manifests: list[Manifest]) -> dict[str, Any]:
    config = yaml.safe_load(adapter(manifests, "ConfigMap")["data"]["config.yaml"])
    assert set(config) == {"rules"}, "custom metrics only: no resource or external rules"
    (only,) = config["rules"]
    found: dict[str, Any] = only
    return found


def test_off_by_default() -> None:
    manifests = render()
    assert ours(manifests) == [] and find(manifests, "APIService") == []


def test_on_renders_the_adapter_its_service_config_and_the_api_service() -> None:
    manifests = render(ON)
    assert sorted(m["kind"] for m in ours(manifests)) == [
        "APIService",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    deployment = adapter(manifests, "Deployment")
    pod = deployment["spec"]["template"]
    service = adapter(manifests, "Service")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "https"}]
    assert container(manifests)["ports"] == [{"name": "https", "containerPort": 6443}]
    assert container(manifests)["image"] == "registry.k8s.io/prometheus-adapter/prometheus-adapter:v0.12.0"
    assert "command" not in container(manifests), "the image's own entry point (/adapter)"
    api = adapter(manifests, "APIService")
    assert api["metadata"]["name"] == "v1beta1.custom.metrics.k8s.io"
    assert f"{api['spec']['group']}/{api['spec']['version']}" == CUSTOM_METRICS_API
    assert api["spec"]["service"] == {
        "name": service["metadata"]["name"],
        "namespace": service["metadata"]["namespace"],
        "port": 443,
    }
    # Where the flags point is where the volumes are; the certificate directory is writable.
    flags = args(manifests)
    mounts = {m["name"]: m["mountPath"] for m in container(manifests)["volumeMounts"]}
    assert flags["config"] == mounts["config"] + "/config.yaml"
    assert flags["cert-dir"].startswith(mounts["tmp"] + "/")
    assert (flags["secure-port"], flags["metrics-relist-interval"]) == ("6443", "30s")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == adapter(manifests, "ConfigMap")["metadata"]["name"]
    assert pod["spec"]["serviceAccountName"] == adapter(manifests, "ServiceAccount")["metadata"]["name"]
    checksum = pod["metadata"]["annotations"]["kubeloop.io/config-sha256"]
    other = render({**ON, "prometheusAdapter": {"enabled": True, "window": "1m"}})
    assert adapter(other, "Deployment")["spec"]["template"]["metadata"]["annotations"] != {
        "kubeloop.io/config-sha256": checksum
    }, "a changed rule rolls the pod"


@pytest.mark.parametrize("files", [(), (ALL_ON,)], ids=["default", "all-on"])
def test_restricted_pod_security_standard_and_resources(files: tuple[Path, ...]) -> None:
    pod = adapter(render(ON, *files), "Deployment")["spec"]["template"]["spec"]
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 65532
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    (only,) = pod["containers"]
    assert only["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert only["resources"]["requests"]["cpu"] and only["resources"]["limits"]["memory"]
    assert {p["httpGet"]["path"] for p in (only["readinessProbe"], only["livenessProbe"])} == {
        "/readyz",
        "/livez",
    }
    assert {p["httpGet"]["scheme"] for p in (only["readinessProbe"], only["livenessProbe"])} == {"HTTPS"}


def subject_of(manifests: list[Manifest]) -> list[dict[str, str]]:
    account = adapter(manifests, "ServiceAccount")["metadata"]
    return [{"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}]


def test_rights_list_pods_and_what_an_aggregated_api_server_needs() -> None:
    manifests = render(ON)
    subjects = subject_of(manifests)
    bindings = {
        (b["kind"], b["roleRef"]["name"]): b for b in ours(manifests) if b["kind"].endswith("Binding")
    }
    assert set(bindings) == {
        ("ClusterRoleBinding", "system:auth-delegator"),
        ("RoleBinding", "extension-apiserver-authentication-reader"),
        ("ClusterRoleBinding", adapter(manifests, "ClusterRole")["metadata"]["name"]),
    }
    assert all(b["subjects"] == subjects for b in bindings.values())
    reader = bindings[("RoleBinding", "extension-apiserver-authentication-reader")]
    assert (reader["metadata"]["namespace"], reader["roleRef"]["kind"]) == ("kube-system", "Role")
    assert adapter(manifests, "ClusterRole")["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}
    ]
    assert not any(m["kind"] == "Secret" for m in ours(manifests))


def test_exact_watched_namespaces_get_roles_there() -> None:
    manifests = render({**ON, "operator": {"watchNamespaces": ["ml-a", "ml-b"]}})
    roles = find(ours(manifests), "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["ml-a", "ml-b"]
    assert all(r["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}] for r in roles)
    pods_bindings = [b for b in find(ours(manifests), "RoleBinding") if b["roleRef"]["kind"] == "Role"]
    assert sorted(b["metadata"]["namespace"] for b in pods_bindings) == ["kube-system", "ml-a", "ml-b"]
    assert find(ours(manifests), "ClusterRole") == []
    assert [b["roleRef"]["name"] for b in find(ours(manifests), "ClusterRoleBinding")] == [
        "system:auth-delegator"
    ]


def test_no_rbac_objects_when_rbac_is_not_created() -> None:
    manifests = render({**ON, "rbac": {"create": False}})
    assert {m["kind"] for m in ours(manifests)} == {
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "Deployment",
        "APIService",
    }


def test_it_queries_the_charts_prometheus_or_the_one_named() -> None:
    assert (
        args(render(ON, namespace="ops", release="ml"))["prometheus-url"]
        == "http://ml-kubeloop-prometheus.ops.svc:9090"
    )
    theirs = "http://prometheus-operated.monitoring.svc:9090"
    assert (
        args(render({**ON, "operator": {"settings": {"prometheusUrl": theirs}}}))["prometheus-url"] == theirs
    )
    own = {"prometheusAdapter": {"enabled": True, "prometheusUrl": "https://thanos.example.com"}}
    assert args(render({**ON, **own}))["prometheus-url"] == "https://thanos.example.com"
    assert args(render(own))["prometheus-url"] == "https://thanos.example.com", (
        "without the chart's Prometheus"
    )


def test_without_any_prometheus_it_is_refused() -> None:
    result = template_text({"prometheusAdapter": {"enabled": True}}, check=False)
    assert result.returncode != 0
    assert "prometheusAdapter.enabled needs a Prometheus" in result.stderr


def test_the_rule_serves_the_servers_gauge_under_the_name_the_hpa_asks_for() -> None:
    """One side's output fed to the other: the operator's HPA metric name is the name the rule serves, the
    series the rule selects is the one the server exports, and the labels it maps to pods are the labels
    the chart's Prometheus gives every server series."""
    manifests = render(ON)
    served = rule(manifests)
    spec = ModelDeploymentSpec.model_validate(
        {"model": {"uri": "s3://m/m.onnx"}, "autoscaling": {"metric": "inFlight", "targetInFlight": 4}}
    )
    (hpa,) = [
        c
        for c in render_serving(owner_of("ModelDeployment"), spec, OperatorSettings())
        if c["kind"] == "HorizontalPodAutoscaler"
    ]
    asked = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    assert served["name"]["as"] == asked == INFLIGHT_METRIC
    assert served["seriesQuery"].startswith(INFLIGHT_METRIC + "{")
    assert served["resources"] == {
        "overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    }
    scrape = yaml.safe_load(
        next(m for m in find(manifests, "ConfigMap") if "prometheus.yml" in m["data"])["data"][
            "prometheus.yml"
        ]
    )
    servers = next(c for c in scrape["scrape_configs"] if c["job_name"] == "kubeloop-servers")
    assert {"namespace", "pod"} <= {r.get("target_label") for r in servers["relabel_configs"]}
    assert served["metricsQuery"] == (
        "sum by (<<.GroupBy>>) (avg_over_time(<<.Series>>{<<.LabelMatchers>>}[30s]))"
    )


def test_the_server_exports_the_gauge() -> None:
    from kubeloop_serving.metrics import ServingMetrics

    metrics = ServingMetrics()
    metrics.inflight.labels("m").inc()
    exposition = metrics.exposition().decode()
    assert f"# TYPE {INFLIGHT_METRIC} gauge" in exposition
    assert f'{INFLIGHT_METRIC}{{model="m"}} 1.0' in exposition


BAD = {
    "window in a unit PromQL does not know": ({"window": "30 seconds"}, "/prometheusAdapter/window"),
    "relist interval in days (a Go duration)": (
        {"relistInterval": "1d"},
        "/prometheusAdapter/relistInterval",
    ),
    "URL without a scheme": ({"prometheusUrl": "prometheus:9090"}, "/prometheusAdapter/prometheusUrl"),
    "misspelt key": ({"relist": "30s"}, "additional properties 'relist' not allowed"),
    "root user": (
        {"podSecurityContext": {"runAsUser": 0}},
        "/prometheusAdapter/podSecurityContext/runAsUser",
    ),
}


@pytest.mark.parametrize(("values", "expected"), BAD.values(), ids=BAD.keys())
def test_bad_values_are_refused_with_the_field_named(values: dict[str, Any], expected: str) -> None:
    result = template_text({**ON, "prometheusAdapter": {"enabled": True, **values}}, check=False)
    assert result.returncode != 0, f"accepted: {values}"
    assert expected in result.stderr, result.stderr


def test_lint_and_kubeconform_with_every_option_on(tmp_path: Path) -> None:
    on = tmp_path / "adapter-on.yaml"
    on.write_text(yaml.safe_dump({"prometheusAdapter": {"enabled": True}}))
    result = helm("lint", "--strict", str(CHART), "-f", str(ALL_ON), "-f", str(on))
    assert "0 chart(s) failed" in result.stdout, result.stdout
    report = kubeconform(template_text(None, ALL_ON, on).stdout)
    bad = [r for r in report["resources"] if r["status"] != "statusValid"]
    assert not bad, bad
    assert {"APIService", "Role", "RoleBinding", "ClusterRoleBinding"} <= {
        r["kind"] for r in report["resources"]
    }
    assert report["summary"]["skipped"] == 0


def test_one_adapter_version_and_image_everywhere() -> None:
    """The chart's default tag, the local node's image (hack/kubelet/node.sh) and what hack/build-addons.sh
    builds agree; the local values run the image the node imports."""
    default = yaml.safe_load((CHART / "values.yaml").read_text())["prometheusAdapter"]["image"]
    local = yaml.safe_load((ROOT / "hack/local-values.yaml").read_text())["prometheusAdapter"]["image"]
    node_sh = (ROOT / "hack/kubelet/node.sh").read_text()
    node = re.search(r"^PROMETHEUS_ADAPTER_VERSION=(\S+)", node_sh, re.M)
    image = re.search(r"^PROMETHEUS_ADAPTER_IMAGE=(\S+):\$PROMETHEUS_ADAPTER_VERSION", node_sh, re.M)
    build = re.search(
        r'PROMETHEUS_ADAPTER_VERSION="\$\{PROMETHEUS_ADAPTER_VERSION:-(\S+)\}"',
        (ROOT / "hack/build-addons.sh").read_text(),
    )
    assert node and image and build
    assert default["tag"] == local["tag"] == node.group(1) == build.group(1) == "v0.12.0"
    assert local["repository"] == image.group(1)


def test_the_local_platform_values_with_the_adapter_on() -> None:
    """What hack/platform.sh installs when asked (KUBELOOP_PROMETHEUS_ADAPTER=1)."""
    manifests = render({"prometheusAdapter": {"enabled": True}}, ROOT / "hack/local-values.yaml")
    assert container(manifests)["image"] == "localhost/kubeloop/prometheus-adapter:v0.12.0"
    assert args(manifests)["prometheus-url"] == "http://kubeloop-prometheus.kubeloop-system.svc:9090"
