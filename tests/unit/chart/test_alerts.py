"""The alert rules (charts/kubeloop/templates/_alerts.tpl): checked and unit-tested by the real promtool
of the Prometheus version the chart runs, the same rules in the PrometheusRule, the chart's Prometheus
and manifests/alerts, and every metric they read exported by the code under the names they use."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from kubeloop_operator import metrics as operator_metrics
from kubeloop_serving.metrics import ServingMetrics
from tests.unit.chart.helm import ALL_ON, ROOT, Manifest, find, kubeconform, one, render, template_text
from tests.unit.chart.test_prometheus import config_of, promtool, promtool_check

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "alerts"
PLAIN = ROOT / "manifests/alerts/kubeloop-rules.yaml"
RULE_ON = {"alerts": {"prometheusRule": {"enabled": True}}}
CRD = "monitoring.coreos.com/v1/PrometheusRule"
ALERTS = {
    "KubeloopDriftDetected",
    "KubeloopModelPerformanceDrop",
    "KubeloopLabelCoverageLow",
    "KubeloopFairnessBreach",
    "KubeloopServingErrorRateHigh",
    "KubeloopServingLatencyHigh",
    "KubeloopCanaryRolledBack",
}
# The keys of alerts.* that are rules.
RULE_KEYS = (
    "driftDetected",
    "performanceDrop",
    "labelCoverageLow",
    "fairnessBreach",
    "servingErrorRate",
    "servingLatencyP99",
    "canaryRolledBack",
)
# Written by the monitor work (performance, label coverage, fairness) with exactly these names and
# labels; checked against the operator's metrics module once they are there.
MONITOR_METRICS = {
    "kubeloop_monitor_performance": {"namespace", "monitor", "metric", "source"},
    "kubeloop_monitor_performance_threshold": {"namespace", "monitor", "metric"},
    "kubeloop_monitor_label_coverage": {"namespace", "monitor"},
    "kubeloop_monitor_fairness": {"namespace", "monitor", "metric"},
    "kubeloop_monitor_fairness_threshold": {"namespace", "monitor", "metric"},
}


def rules_of(values: dict[str, Any] | None = None, *files: Path) -> dict[str, Any]:
    """The spec of the PrometheusRule the chart renders with `values` (forced on)."""
    merged = {**(values or {}), "alerts": {**(values or {}).get("alerts", {}), **RULE_ON["alerts"]}}
    spec: dict[str, Any] = one(render(merged, *files), "PrometheusRule")["spec"]
    return spec


def alerts_of(rules: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}


def promtool_run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool()), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def unit_test(fixture: str, rules_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` of one fixture, with `rules_text` as the kubeloop-rules.yaml it loads."""
    shutil.copy(FIXTURES / fixture, tmp_path / fixture)
    (tmp_path / "kubeloop-rules.yaml").write_text(rules_text)
    return promtool_run("test", "rules", tmp_path / fixture)


def fixture_tests(fixture: Path) -> list[dict[str, Any]]:
    loaded: dict[str, Any] = yaml.safe_load(fixture.read_text())
    return [case for test in loaded["tests"] for case in test["alert_rule_test"]]


def test_seven_alerts_each_with_severity_summary_and_a_description_naming_the_object() -> None:
    for rules in (rules_of(), rules_of(None, ALL_ON)):
        alerts = alerts_of(rules)
        assert set(alerts) == ALERTS
        for name, rule in alerts.items():
            assert rule["labels"]["severity"], name
            assert set(rule["annotations"]) == {"summary", "description"}, name
            description = rule["annotations"]["description"]
            assert "$labels.namespace" in description, name
            assert re.search(r"\$labels\.(monitor|model|modeldeployment)\b", description), name
            # A rolled-back canary's value is 1: its description gives the checks' values instead.
            assert "$value" in description or "canary_check_value" in description, name


def test_values_reach_the_rules() -> None:
    alerts = alerts_of(rules_of(None, ALL_ON))
    errors, p99 = alerts["KubeloopServingErrorRateHigh"], alerts["KubeloopServingLatencyHigh"]
    assert ") > 0.01\n" in errors["expr"] and "[10m]" in errors["expr"] and ">= 1" in errors["expr"]
    assert errors["for"] == "2m" and errors["labels"] == {"severity": "page", "team": "ml-platform"}
    assert ") > 0.25\n" in p99["expr"] and "[10m]" in p99["expr"] and p99["for"] == "5m"
    assert alerts["KubeloopLabelCoverageLow"]["expr"].endswith("< 0.8")
    assert alerts["KubeloopModelPerformanceDrop"]["labels"]["severity"] == "critical"
    assert all(rule["labels"]["team"] == "ml-platform" for rule in alerts.values())
    off = {"alerts": {"driftDetected": {"enabled": False}, "servingLatencyP99": {"enabled": False}}}
    assert set(alerts_of(rules_of(off))) == ALERTS - {"KubeloopDriftDetected", "KubeloopServingLatencyHigh"}
    every_off = {"alerts": {name: {"enabled": False} for name in RULE_KEYS}}
    assert rules_of(every_off) == {"groups": []}


def rendered_rule_files(tmp_path: Path) -> list[Path]:
    """The rules as each consumer gets them, written out: the PrometheusRule's spec (default and every
    option), the chart's Prometheus's ConfigMap, and the committed plain file."""
    files = []
    for name, spec in (("default", rules_of()), ("all-on", rules_of(None, ALL_ON))):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        files.append(path)
    configmap = one(render({"prometheus": {"enabled": True}}), "ConfigMap", "prometheus")
    path = tmp_path / "builtin.yaml"
    path.write_text(configmap["data"]["kubeloop-rules.yaml"])
    return [*files, path, PLAIN]


def test_promtool_checks_every_rendering_of_the_rules(tmp_path: Path) -> None:
    for path in rendered_rule_files(tmp_path):
        result = promtool_run("check", "rules", path)
        assert result.returncode == 0, f"{path.name}: {result.stdout}{result.stderr}"
        assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout, result.stdout


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    broken = PLAIN.read_text().replace("[5m]))\n", "[5m])\n", 1)
    assert broken != PLAIN.read_text()
    (tmp_path / "broken.yaml").write_text(broken)
    result = promtool_run("check", "rules", tmp_path / "broken.yaml")
    assert result.returncode != 0 and "parse error" in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    fired: set[str] = set()
    silent: set[str] = set()
    for fixture in FIXTURES.glob("*.yaml"):
        for case in fixture_tests(fixture):
            (fired if case["exp_alerts"] else silent).add(case["alertname"])
    assert fired == silent == ALERTS


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.yaml")))
def test_each_alert_fires_in_its_positive_case_and_stays_silent_in_its_negative_case(
    fixture: str, tmp_path: Path
) -> None:
    result = unit_test(fixture, PLAIN.read_text(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# Values under which a fixture must fail: a positive case that no longer fires (a longer `for`, a
# higher threshold, the rule off) or a negative case that now does (a lower threshold).
BREAKING_VALUES: list[tuple[str, dict[str, Any]]] = [
    ("drift.yaml", {"driftDetected": {"for": "5m"}}),
    ("performance.yaml", {"performanceDrop": {"enabled": False}}),
    ("label-coverage.yaml", {"labelCoverageLow": {"min": 0.6}}),
    ("label-coverage.yaml", {"labelCoverageLow": {"for": "2h"}}),
    ("fairness.yaml", {"fairnessBreach": {"for": "5m"}}),
    ("serving-error-rate.yaml", {"servingErrorRate": {"threshold": 0.04}}),
    ("serving-error-rate.yaml", {"servingErrorRate": {"threshold": 0.1}}),
    ("serving-error-rate.yaml", {"servingErrorRate": {"minRequestsPerSecond": 0.05}}),
    ("serving-error-rate.yaml", {"servingErrorRate": {"for": "2m"}}),
    ("serving-latency.yaml", {"servingLatencyP99": {"thresholdSeconds": 0.49}}),
    ("serving-latency.yaml", {"servingLatencyP99": {"thresholdSeconds": 1}}),
    ("serving-latency.yaml", {"servingLatencyP99": {"minRequestsPerSecond": 0.01}}),
    ("canary.yaml", {"canaryRolledBack": {"for": "5m"}}),
    ("canary.yaml", {"canaryRolledBack": {"severity": "critical"}}),
]


@pytest.mark.parametrize(("fixture", "alerts"), BREAKING_VALUES, ids=[str(v) for _, v in BREAKING_VALUES])
def test_the_fixtures_fail_under_other_values(fixture: str, alerts: dict[str, Any], tmp_path: Path) -> None:
    result = unit_test(fixture, yaml.safe_dump(rules_of({"alerts": alerts})), tmp_path)
    assert result.returncode != 0, f"still passes with {alerts}:\n{result.stdout}"
    assert "FAILED" in result.stdout + result.stderr


# What each negative case guards against: the rule changed so, its fixture must fail.
MUTANTS: list[tuple[str, str, str]] = [
    ("drift.yaml", "max by (namespace, monitor) (kubeloop_drift_share)", "kubeloop_drift_share"),
    ("drift.yaml", "(kubeloop_drift_detected) == 1", "(kubeloop_drift_detected) >= 0"),
    ("performance.yaml", "  < on (namespace, monitor, metric)", "  <= on (namespace, monitor, metric)"),
    ("performance.yaml", "  > on (namespace, monitor, metric)", "  >= on (namespace, monitor, metric)"),
    ("performance.yaml", '{metric!~"mae|rmse"}', '{metric!~"rmse"}'),
    ("fairness.yaml", "  > on (namespace, monitor, metric)\n", "  >= on (namespace, monitor, metric)\n"),
    ("serving-error-rate.yaml", 'track!="shadow", code=~"5.."', 'code=~"5.."'),
    ("serving-error-rate.yaml", 'code=~"5.."', 'code!~"2.."'),
    ("serving-latency.yaml", '{track!="shadow"}[5m]', "[5m]"),
    ("canary.yaml", 'phase="RolledBack"', 'phase=~"RolledBack|Aborted"'),
]


@pytest.mark.parametrize(("fixture", "old", "new"), MUTANTS, ids=[f"{f}:{n}" for f, _, n in MUTANTS])
def test_the_negative_cases_catch_a_wrong_rule(fixture: str, old: str, new: str, tmp_path: Path) -> None:
    text = PLAIN.read_text()
    assert text.count(old) >= 1, old
    result = unit_test(fixture, text.replace(old, new), tmp_path)
    assert result.returncode != 0, f"{old!r} -> {new!r} still passes:\n{result.stdout}"


def prometheus_rules(manifests: list[Manifest]) -> list[Manifest]:
    return find(manifests, "PrometheusRule")


def test_prometheus_rule_renders_when_enabled_and_not_when_disabled() -> None:
    on = render({"alerts": {"prometheusRule": {"enabled": True, "labels": {"release": "kps"}}}})
    rule = one(on, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == "kubeloop-system"
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert rule["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kubeloop"
    assert set(alerts_of(rule["spec"])) == ALERTS
    off = {"alerts": {"prometheusRule": {"enabled": False}}}
    assert prometheus_rules(render(off, api_versions=(CRD,))) == [], "off even where the CRD exists"


def test_prometheus_rule_auto_follows_the_crd() -> None:
    """Default auto: where the cluster serves PrometheusRule (helm install, or --api-versions)."""
    assert prometheus_rules(render()) == [], "no Prometheus operator: nothing the API server would refuse"
    assert len(prometheus_rules(render(None, api_versions=(CRD,)))) == 1
    assert prometheus_rules(render(None, api_versions=("monitoring.coreos.com/v1/ServiceMonitor",))) == []


def test_the_plain_rules_file_is_fresh(tmp_path: Path) -> None:
    out = tmp_path / "kubeloop-rules.yaml"
    subprocess.run([ROOT / "hack/render-alerts.sh", out], check=True, capture_output=True, timeout=300)
    assert out.read_text() == PLAIN.read_text(), "manifests/alerts is stale: run hack/render-alerts.sh"
    assert yaml.safe_load(PLAIN.read_text()) == rules_of(), "the plain file is the PrometheusRule's spec"


def test_the_builtin_prometheus_loads_the_rules(tmp_path: Path) -> None:
    manifests = render({"prometheus": {"enabled": True}})
    configmap = one(manifests, "ConfigMap", "prometheus")
    assert config_of(manifests)["rule_files"] == ["kubeloop-rules.yaml"]
    assert yaml.safe_load(configmap["data"]["kubeloop-rules.yaml"]) == rules_of()
    # Relative to the config file: the ConfigMap's keys are files of one directory in the pod.
    container = one(manifests, "Deployment", "prometheus")["spec"]["template"]["spec"]["containers"][0]
    args = dict(a.removeprefix("--").split("=", 1) for a in container["args"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert Path(args["config.file"]).parent == Path(mounts["config"])
    result = promtool_check(manifests, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout, "promtool followed rule_files"


def test_the_builtin_prometheus_rolls_on_new_rules_and_can_do_without_them() -> None:
    def checksum(values: dict[str, Any]) -> str:
        pod = one(render(values), "Deployment", "prometheus")["spec"]["template"]
        value: str = pod["metadata"]["annotations"]["kubeloop.io/config-sha256"]
        return value

    on: dict[str, Any] = {"prometheus": {"enabled": True}}
    assert checksum(on) != checksum({**on, "alerts": {"servingErrorRate": {"threshold": 0.1}}})
    manifests = render({**on, "alerts": {"builtinPrometheus": False}})
    assert "rule_files" not in config_of(manifests)
    assert set(one(manifests, "ConfigMap", "prometheus")["data"]) == {"prometheus.yml"}


def metric_names(rules: dict[str, Any]) -> set[str]:
    """Every metric an expression or an annotation's query reads."""
    text = yaml.safe_dump(list(alerts_of(rules).values()))
    return set(re.findall(r"\b(kubeloop_[a-z0-9_]+)\b", text))


def test_the_serving_metrics_the_rules_read_are_exported_so() -> None:
    served = ServingMetrics()
    served.requests.labels("churn", "3", "stable", "500").inc()
    served.request_duration.labels("churn", "3", "stable").observe(0.7)
    exported = {
        sample.name: set(sample.labels)
        for family in text_string_to_metric_families(served.exposition().decode())
        for sample in family.samples
    }
    used = {name for name in metric_names(rules_of()) if name.startswith("kubeloop_serving_")}
    assert used == {
        "kubeloop_serving_requests_total",
        "kubeloop_serving_request_duration_seconds_bucket",
        "kubeloop_serving_request_duration_seconds_count",
    }
    for name in used:
        assert name in exported, name
        assert {"model", "track"} <= exported[name], (name, exported[name])
    assert "code" in exported["kubeloop_serving_requests_total"]
    assert 'code="500"' in served.exposition().decode(), 'the status code as digits: code=~"5.." matches'


def test_the_operator_metrics_the_rules_read_are_exported_so() -> None:
    exported = {
        metric._name: set(metric._labelnames)
        for metric in vars(operator_metrics).values()
        if isinstance(metric, MetricWrapperBase)
    }
    used = {name for name in metric_names(rules_of()) if not name.startswith("kubeloop_serving_")}
    expected = {
        "kubeloop_drift_detected": {"namespace", "monitor"},
        "kubeloop_drift_share": {"namespace", "monitor"},
        "kubeloop_modeldeployment_rollout_phase": {"namespace", "modeldeployment", "phase"},
        "kubeloop_modeldeployment_canary_check_value": {"namespace", "modeldeployment", "check"},
        **MONITOR_METRICS,
    }
    assert used == set(expected)
    for name, labels in expected.items():
        if name in MONITOR_METRICS and name not in exported:
            continue
        assert exported.get(name) == labels, (name, exported.get(name))
    assert "RolledBack" in operator_metrics.ROLLOUT_PHASES


def test_kubeconform_checks_the_prometheus_rule() -> None:
    report = kubeconform(template_text(RULE_ON).stdout)
    (rule,) = [r for r in report["resources"] if r["kind"] == "PrometheusRule"]
    assert rule["status"] == "statusValid", rule
    docs = [d for d in yaml.safe_load_all(template_text(RULE_ON).stdout) if d]
    bad = one(docs, "PrometheusRule")
    bad["spec"]["groups"][0]["rules"][0]["annotation"] = {"summary": "misspelt"}
    report = kubeconform(yaml.safe_dump(bad))
    (result,) = report["resources"]
    assert result["status"] == "statusInvalid" and "'annotation' not allowed" in result["msg"], result
