"""The Serving, Training and Drift dashboards: Grafana 10+ JSON, one datasource variable used by every
panel, and only metrics the code defines (PromQL checked by promtool when it is installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.chart.dashboards import (
    GRAFANA_BUILTINS,
    METRIC,
    defined_metrics,
    exported_series_names,
    label_values_as_promql,
    load,
    panels,
    queries,
    substitute,
    used_variables,
    variable_query,
    variables,
)

pytestmark = pytest.mark.unit

BOARDS = load()
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def test_three_dashboards_with_unique_uids() -> None:
    assert set(BOARDS) == {"serving", "training", "drift"}
    assert len({b["uid"] for b in BOARDS.values()}) == 3
    assert all(b["title"].startswith("kubeloop / ") for b in BOARDS.values())


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_grafana_10_shape(name: str) -> None:
    board = BOARDS[name]
    assert board["schemaVersion"] >= 39
    assert board["id"] is None, "importable anywhere"
    ids = [p["id"] for p in board["panels"]] + [
        p["id"] for row in board["panels"] for p in row.get("panels", [])
    ]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels(board):
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        assert panel.get("description"), f"{panel['title']}: say what the panel shows"
        assert panel["targets"], panel["title"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_panel_and_variable_uses_the_datasource_variable(name: str) -> None:
    board = BOARDS[name]
    datasource = variables(board)["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    for panel in panels(board):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, (panel["title"], target["refId"])
    for variable in variables(board).values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_variable_used_is_defined(name: str) -> None:
    board = BOARDS[name]
    defined = set(variables(board)) | GRAFANA_BUILTINS
    texts = [q.expr for q in queries(name, board)]
    texts += [variable_query(v) for v in variables(board).values() if v["type"] == "query"]
    for text in texts:
        assert used_variables(text) <= defined, text


def test_every_metric_a_dashboard_uses_exists_in_the_code() -> None:
    exported = exported_series_names()
    for name, board in BOARDS.items():
        texts = [q.expr for q in queries(name, board)]
        texts += [variable_query(v) for v in variables(board).values() if v["type"] == "query"]
        for text in texts:
            missing = set(METRIC.findall(text)) - exported
            assert not missing, f"{name}: {missing} in {text!r} are defined nowhere in {sorted(exported)}"


COVERAGE = {
    "serving": (
        "kubeloop_serving_requests",
        "kubeloop_serving_request_duration_seconds",
        "kubeloop_serving_batch_size",
        "kubeloop_serving_inflight_requests",
        "kubeloop_serving_model_load_seconds",
        "kubeloop_serving_model_info",
        "kubeloop_serving_payload_log_rows",
        "kubeloop_serving_payload_log_dropped",
        "kubeloop_modeldeployment_replicas",
        "kubeloop_modeldeployment_ready_replicas",
        "kubeloop_modeldeployment_min_replicas",
        "kubeloop_modeldeployment_max_replicas",
        "kubeloop_modeldeployment_target_cpu_utilization_ratio",
    ),
    "training": (
        "kubeloop_trainingjob_phase",
        "kubeloop_trainingjob_duration_seconds",
        "kubeloop_trainingjob_failures_total",
        "kubeloop_trainingjob_gpus_requested",
        "kubeloop_operator_reconciles_total",
    ),
    "drift": (
        "kubeloop_drift_score",
        "kubeloop_drift_feature_drifted",
        "kubeloop_drift_share",
        "kubeloop_drift_detected",
        "kubeloop_drift_checks_total",
        "kubeloop_drift_retrains_total",
    ),
}


@pytest.mark.parametrize("name", sorted(COVERAGE))
def test_each_dashboard_shows_its_metrics(name: str) -> None:
    assert set(COVERAGE[name]) <= set(defined_metrics())
    used = {m for q in queries(name, BOARDS[name]) for m in METRIC.findall(q.expr)}
    stems = {m.removesuffix(s) for m in used for s in ("_bucket", "_count", "_sum", "_total", "")}
    missing = [m for m in COVERAGE[name] if m not in stems and m.removesuffix("_total") not in stems]
    assert not missing, missing


EXAMPLE_VALUES = {"namespace": "ml-a", "model": "churn", "monitor": "churn-drift", "datasource": "prom"}
BUILTIN_VALUES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}


def test_promql_parses(tmp_path: Path) -> None:
    """promtool (Debian's prometheus package; hack/install-system.sh) parses every expression."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (hack/install-system.sh installs Debian's prometheus)")
    rules: list[dict[str, Any]] = []
    values = {**EXAMPLE_VALUES, **BUILTIN_VALUES}
    for name, board in BOARDS.items():
        exprs = [q.expr for q in queries(name, board)]
        exprs += [
            label_values_as_promql(variable_query(v))[0]
            for v in variables(board).values()
            if v["type"] == "query"
        ]
        rules += [
            {"record": f"kubeloop:{name}:{i}", "expr": substitute(e, values)} for i, e in enumerate(exprs)
        ]
    file = tmp_path / "rules.yaml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
