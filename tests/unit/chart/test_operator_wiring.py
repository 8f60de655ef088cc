"""What the chart renders is what the operator reads: its settings, flags, RBAC and security context."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubeloop_operator.kube import KINDS
from kubeloop_operator.settings import OperatorSettings
from tests.unit.chart.helm import ALL_ON, CHART, Manifest, find, one, operator_container, operator_env, render

pytestmark = pytest.mark.unit

PREFIX = "KUBELOOP_OPERATOR_"
VALUE_SETS = {"default": (), "all-on": (ALL_ON,)}


@pytest.mark.parametrize("files", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_setting_is_one_the_operator_reads(
    files: tuple[Path, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: v for k, v in operator_env(render(None, *files)).items() if k.startswith(PREFIX)}
    fields = {PREFIX + name.upper() for name in OperatorSettings.model_fields}
    assert set(env) <= fields, f"the operator does not read {set(env) - fields}"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = OperatorSettings()  # parses exactly as the operator will: a bad value raises here
    assert settings.metrics_port == 9090
    assert str(settings.namespaces) == str(json.loads(env[PREFIX + "NAMESPACES"]))


def test_settings_map_from_values(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "operator": {
            "metricsPort": 9300,
            "watchNamespaces": ["ml-a", "ml-b"],
            "settings": {"servingImage": "r/serving:1", "resyncSeconds": 5, "serviceMonitors": True},
        },
        "mlflow": {"enabled": True, "port": 5001},
    }
    manifests = render(values, namespace="ops")
    env = operator_env(manifests)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = OperatorSettings()
    assert (settings.serving_image, settings.resync_seconds, settings.service_monitors) == (
        "r/serving:1",
        5,
        True,
    )
    assert settings.namespaces == ["ml-a", "ml-b"]
    assert settings.mlflow_tracking_uri == "http://kubeloop-mlflow.ops.svc:5001", (
        "points at the chart's MLflow"
    )
    assert settings.trainer_image == "kubeloop/trainer:0.1.0", "defaults follow the chart's appVersion"
    container = operator_container(manifests)
    assert container["command"] == ["kubeloop", "operator"]
    assert container["args"] == [
        "--liveness=http://0.0.0.0:8081/healthz",
        "--namespace=ml-a",
        "--namespace=ml-b",
    ]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 9300, "healthz": 8081}
    service = one(manifests, "Service", "operator-metrics")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9300, "targetPort": "metrics"}]


def test_pod_monitor_turns_the_operators_service_monitors_off_in_auto_mode() -> None:
    env = operator_env(render({"monitoring": {"podMonitor": {"enabled": True}}}))
    assert env[PREFIX + "SERVICE_MONITORS"] == "false", "the PodMonitor already scrapes every server"
    assert PREFIX + "SERVICE_MONITORS" not in operator_env(render()), "auto: the operator looks for the CRD"


def pod_specs(manifests: list[Manifest]) -> list[tuple[str, dict[str, Any]]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in find(manifests, "Deployment")]


@pytest.mark.parametrize("files", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_restricted_pod_security_standard(files: tuple[Path, ...]) -> None:
    manifests = render({"mlflow": {"enabled": True}}, *files)
    assert len(pod_specs(manifests)) == (3 if files else 2), "the operator, MLflow (and Prometheus: all-on)"
    for name, pod in pod_specs(manifests):
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] > 0, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert container["resources"]["requests"], name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            tmp = next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"])
            assert tmp == {"name": "tmp", "emptyDir": {}}, name


def test_operator_is_one_standalone_replica_with_a_liveness_probe() -> None:
    deployment = one(render(), "Deployment", "operator")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    assert probe["httpGet"] == {"path": "/healthz", "port": "healthz"}


def rules_of(manifests: list[Manifest], kind: str) -> list[dict[str, Any]]:
    return [rule for role in find(manifests, kind) for rule in role["rules"]]


def granted(rules: list[dict[str, Any]], group: str, resource: str) -> set[str]:
    return {
        verb
        for rule in rules
        if group in rule["apiGroups"] and resource in rule["resources"] and "resourceNames" not in rule
        for verb in rule["verbs"]
    }


def test_rbac_covers_every_kind_the_operator_calls_and_nothing_broad() -> None:
    """kube.KINDS lists every kind the operator reads or writes: each has rules, none has wildcards."""
    rules = rules_of(render(), "ClusterRole")
    for kind, (prefix, plural) in KINDS.items():
        group = "" if prefix == "/api/v1" else prefix.removeprefix("/apis/").rsplit("/", 1)[0]
        assert granted(rules, group, plural), f"no rule for {kind} ({group}/{plural})"
    for rule in rules:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"]), rule
    resources = {r for rule in rules for r in rule["resources"]}
    assert not {"secrets", "nodes", "roles", "clusterroles"} & resources
    assert granted(rules, "", "configmaps") == {"patch", "create"}, "routes are written, never read"
    assert granted(rules, "", "pods") == {"list"}
    assert granted(rules, "kubeloop.io", "trainingjobs/status") == {"update"}
    assert granted(rules, "apiextensions.k8s.io", "customresourcedefinitions") == {"list", "watch"}
    assert granted(rules, "", "namespaces") == set(), "cluster-wide: kopf does not look at namespaces"


def test_watching_some_namespaces_cluster_wide_lets_kopf_resolve_patterns() -> None:
    rules = rules_of(render({"operator": {"watchNamespaces": ["team-*"]}}), "ClusterRole")
    assert granted(rules, "", "namespaces") == {"list", "watch"}


def test_service_monitor_rights_only_when_the_operator_renders_them() -> None:
    def monitors(values: dict[str, Any]) -> set[str]:
        return granted(rules_of(render(values), "ClusterRole"), "monitoring.coreos.com", "servicemonitors")

    assert monitors({}) == {"patch", "create", "list", "delete"}
    assert monitors({"operator": {"settings": {"serviceMonitors": False}}}) == set()
    assert monitors({"monitoring": {"podMonitor": {"enabled": True}}}) == set()


def test_namespaced_rbac_is_roles_in_each_watched_namespace_and_nothing_cluster_wide() -> None:
    manifests = render({"rbac": {"namespaced": True}, "operator": {"watchNamespaces": ["ml-a", "ml-b"]}})
    assert not find(manifests, "ClusterRole") and not find(manifests, "ClusterRoleBinding")
    roles = {r["metadata"]["namespace"]: r for r in find(manifests, "Role")}
    bindings = {b["metadata"]["namespace"]: b for b in find(manifests, "RoleBinding")}
    assert set(roles) == set(bindings) == {"ml-a", "ml-b"}
    for binding in bindings.values():
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "kubeloop-operator", "namespace": "kubeloop-system"}
        ]
    rules = roles["ml-a"]["rules"]
    assert granted(rules, "batch", "jobs") == {"get", "list", "watch", "patch", "create", "delete"}
    assert not granted(rules, "apiextensions.k8s.io", "customresourcedefinitions")
    assert "--namespace=ml-b" in operator_container(manifests)["args"]


def test_mlflow_database_only_by_secret_reference() -> None:
    manifests = render({"mlflow": {"enabled": True, "backendStore": {"existingSecret": "mlflow-db"}}})
    container = one(manifests, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    assert "--backend-store-uri=$(MLFLOW_BACKEND_STORE_URI)" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"] == {
        "secretKeyRef": {"name": "mlflow-db", "key": "uri"}
    }
    assert not find(manifests, "Secret"), "the chart never holds a secret value"


def test_mlflow_defaults_to_sqlite_on_a_volume() -> None:
    manifests = render({"mlflow": {"enabled": True}})
    pod = one(manifests, "Deployment", "mlflow")["spec"]["template"]["spec"]
    assert "--backend-store-uri=sqlite:////mlflow/mlflow.db" in pod["containers"][0]["args"]
    claim = one(manifests, "PersistentVolumeClaim", "mlflow")
    volume = next(v for v in pod["volumes"] if v["name"] == "data")
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    service = one(manifests, "Service", "mlflow")
    assert service["spec"]["ports"][0]["port"] == 5000
    assert not find(render(), "Deployment", "mlflow"), "off by default"


def test_dashboards_ship_as_labelled_configmaps() -> None:
    values = {
        "grafana": {
            "dashboards": {"label": "grafana_dashboard", "labelValue": "kubeloop", "namespace": "mon"}
        }
    }
    maps = find(render(values), "ConfigMap", "dashboard")
    files = sorted((CHART / "dashboards").glob("*.json"))
    assert len(maps) == len(files) == 3
    by_key = {key: text for m in maps for key, text in m["data"].items()}
    for file in files:
        assert json.loads(by_key[f"kubeloop-{file.name}"]) == json.loads(file.read_text())
    for configmap in maps:
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "kubeloop"
        assert configmap["metadata"]["namespace"] == "mon"
    assert not find(render({"grafana": {"dashboards": {"enabled": False}}}), "ConfigMap")


def test_monitors_select_the_operator_and_every_model_server() -> None:
    values = {
        "monitoring": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "podMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        },
        "operator": {"watchNamespaces": ["ml-a"]},
    }
    manifests = render(values)
    service_monitor, pod_monitor = one(manifests, "ServiceMonitor"), one(manifests, "PodMonitor")
    for monitor in (service_monitor, pod_monitor):
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    service = one(manifests, "Service", "operator-metrics")
    assert service_monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service_monitor["spec"]["endpoints"][0]["honorLabels"] is True, (
        "keep the resources' namespace label"
    )
    assert pod_monitor["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/managed-by": "kubeloop",
        "kubeloop.io/component": "server",
    }
    assert pod_monitor["spec"]["namespaceSelector"] == {"matchNames": ["ml-a"]}
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "http"


def test_pod_monitor_selects_the_servers_the_operator_renders() -> None:
    from kubeloop.api.deployment import ModelDeploymentSpec
    from kubeloop_operator.render.common import Owner
    from kubeloop_operator.render.serving import render_serving

    owner = Owner("ModelDeployment", "kubeloop.io/v1alpha1", "churn", "ml-a", "uid-1")
    spec = ModelDeploymentSpec.model_validate({"model": {"uri": "s3://models/churn.onnx"}})
    server = next(c for c in render_serving(owner, spec, OperatorSettings()) if c["kind"] == "Deployment")
    pod = server["spec"]["template"]
    monitor = one(render({"monitoring": {"podMonitor": {"enabled": True}}}), "PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    ports = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in ports
    relabelled = {r["sourceLabels"][0] for r in monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]}
    labels = {
        "__meta_kubernetes_pod_label_" + k.replace(".", "_").replace("/", "_")
        for k in pod["metadata"]["labels"]
    }
    assert relabelled <= labels
