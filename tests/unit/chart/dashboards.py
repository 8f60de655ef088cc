"""The Grafana dashboards the chart ships, and the metrics the code defines, read for tests."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any

from tests.unit.chart.helm import CHART, ROOT

DASHBOARDS = CHART / "dashboards"
SOURCES = ("operator", "serving", "drift", "trainer", "kubeloop")
METRIC = re.compile(r"\bkubeloop_[a-z0-9_]+\b")
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}")
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms"}
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<metric>.+),\s*)?(?P<label>\w+)\)$")
# What each kind of metric exports (prometheus_client): a Counter "x" or "x_total" is x_total.
SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_count", "_sum", "_created"),
    "Summary": ("", "_count", "_sum", "_created"),
}


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref: str
    expr: str


def load() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included, rows themselves left out."""
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            out += panel.get("panels", [])
        else:
            out.append(panel)
    return out


def queries(name: str, dashboard: dict[str, Any]) -> list[Query]:
    return [
        Query(name, panel["title"], target["refId"], target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query")
    return str(query["query"] if isinstance(query, dict) else query)


def label_values_as_promql(query: str) -> tuple[str, str]:
    """Grafana's label_values(metric, label) as the PromQL that lists the values, and the label."""
    match = LABEL_VALUES.match(query.strip())
    if match is None:
        raise ValueError(f"not a label_values() query: {query}")
    return f"group by ({match['label']}) ({match['metric']})", match["label"]


def used_variables(text: str) -> set[str]:
    return {a or b for a, b in VARIABLE.findall(text)}


def substitute(expr: str, values: dict[str, str]) -> str:
    """Template variables replaced as Grafana would for single values; regex-quoted by the caller."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values[name]

    return VARIABLE.sub(one, expr)


def module_strings(tree: ast.Module) -> dict[str, str]:
    """Module-level NAME = "string" constants (metric prefixes)."""
    out: dict[str, str] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def string_value(node: ast.expr, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = string_value(node.left, constants), string_value(node.right, constants)
        return left + right if left is not None and right is not None else None
    return None


def defined_metrics() -> dict[str, str]:
    """Every Prometheus metric the Python sources define: name as written -> its type."""
    found: dict[str, str] = {}
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            constants = module_strings(tree)
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and node.args):
                    continue
                func = node.func
                kind = (
                    func.id
                    if isinstance(func, ast.Name)
                    else func.attr
                    if isinstance(func, ast.Attribute)
                    else ""
                )
                if kind in SUFFIXES:
                    name = string_value(node.args[0], constants)
                    if name is not None:
                        found[name] = kind
    return found


def exported_series_names() -> set[str]:
    names: set[str] = set()
    for name, kind in defined_metrics().items():
        base = name.removesuffix("_total") if kind == "Counter" else name
        names |= {base + suffix for suffix in SUFFIXES[kind]}
    return names
