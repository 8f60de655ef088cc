"""Operator -> server: the routes ConfigMap the operator renders is a table the server compiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeloop.api.deployment import ModelDeploymentSpec
from kubeloop.contracts.routing import ROUTES_KEY
from kubeloop_operator.render.common import Owner
from kubeloop_operator.render.delivery import SideTracks
from kubeloop_operator.render.serving import render_serving
from kubeloop_operator.settings import OperatorSettings
from kubeloop_serving.routing.table import RoutesFile, RouteTable

pytestmark = pytest.mark.unit
OWNER = Owner("ModelDeployment", "kubeloop.io/v1alpha1", "churn", "team-a", "uid-1", 3)


def load(tmp_path: Path, spec: dict[str, object], ready: frozenset[str]) -> RouteTable:
    md = ModelDeploymentSpec.model_validate({"model": {"uri": "models:/churn@champion"}, **spec})
    children = render_serving(OWNER, md, OperatorSettings(), side=SideTracks(ready=ready))
    config = next(c for c in children if c["kind"] == "ConfigMap")
    path = tmp_path / ROUTES_KEY
    path.write_text(config["data"][ROUTES_KEY])
    tables: list[RouteTable] = []
    errors: list[None] = []
    RoutesFile(str(path), tables.append, lambda: errors.append(None)).check()
    assert errors == [] and len(tables) == 1
    return tables[0]


def test_the_server_compiles_the_shadow_and_the_ab_test(tmp_path: Path) -> None:
    table = load(
        tmp_path,
        {
            "shadow": {"model": {"uri": "/s.onnx"}, "percent": 10},
            "abTest": {
                "header": "X-User-Id",
                "variants": [
                    {"name": "control", "weightPercent": 70},
                    {"name": "b", "model": {"uri": "/b.onnx"}, "weightPercent": 30},
                ],
            },
        },
        frozenset({"shadow", "b"}),
    )
    assert table.routes.generation == 3
    assert table.shadow is not None and table.routes.shadow is not None
    assert table.routes.shadow.url == "http://churn-shadow.team-a.svc.cluster.local:8080"
    assert table.routes.shadow.grpc_target == "churn-shadow.team-a.svc.cluster.local:8081"
    assert [(v.name, v.grpc_target) for v in table.routes.ab.variants] == [  # type: ignore[union-attr]
        ("control", None),
        ("b", "churn-b.team-a.svc.cluster.local:8081"),
    ]
    assert table.ab_local == "control" and table.ab_header == b"x-user-id"
    assert table.ab_buckets is not None
    assert sum(v.name == "b" for v in table.ab_buckets) == 30


def test_tracks_not_ready_compile_to_no_split(tmp_path: Path) -> None:
    table = load(
        tmp_path,
        {
            "shadow": {"model": {"uri": "/s.onnx"}, "percent": 10},
            "abTest": {
                "header": "x-user-id",
                "variants": [
                    {"name": "b", "model": {"uri": "/b.onnx"}, "weightPercent": 60},
                    {"name": "a", "weightPercent": 40},
                ],
            },
        },
        frozenset(),
    )
    assert table.shadow is None, "nothing mirrored before the shadow is ready"
    assert table.ab_buckets is not None and {v.name for v in table.ab_buckets} == {"a"}
