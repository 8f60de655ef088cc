"""Routing's other paths with real servers: an unreachable canary, a failing canary, sticky A/B."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from kubeloop.contracts.routing import TRACK_HEADER, ABTest, Canary, Routes, Variant
from tests.fixtures.ports import free_port
from tests.unit.serving.conftest import serve_in_thread, wait_for
from tests.unit.serving.routing_helpers import (
    TABULAR_BODY,
    broken_model,
    post_keepalive,
    publish_routes,
    request_bytes,
)

pytestmark = pytest.mark.unit
TABULAR = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
BIG = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1000, 2, 3, 4]}]}


def test_an_unreachable_canary_is_served_here_and_counted(tmp_path: Path, tabular_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    link = publish_routes(tmp_path / "routes", Routes(canary=Canary(url=nowhere, weight_percent=50)))
    with serve_in_thread(tabular_path, model_name="tabular", routes_file=str(link)) as stable:
        answers = [stable.infer("tabular", TABULAR) for _ in range(100)]
        assert {(a.status_code, a.headers[TRACK_HEADER]) for a in answers} == {(200, "stable")}
        assert stable.metric("kubeloop_serving_route_fallbacks_total", route="canary", reason="connect") == 50
        assert stable.metric("kubeloop_serving_routed_requests_total", route="canary", code="error") == 50
        assert stable.metric("kubeloop_serving_requests_total", track="stable", code="200") == 100
        # the output distribution: every element of the first output (scores [1, 3]) per answer
        assert stable.metric("kubeloop_serving_prediction_count", track="stable") == 300


def test_a_canary_answering_500_is_returned_as_it_is(tmp_path: Path, tabular_path: Path) -> None:
    with serve_in_thread(
        broken_model(tmp_path / "broken.onnx"), model_name="tabular", track="canary"
    ) as canary:
        link = publish_routes(tmp_path / "routes", Routes(canary=Canary(url=canary.url, weight_percent=100)))
        with serve_in_thread(tabular_path, model_name="tabular", routes_file=str(link)) as stable:
            working = stable.infer("tabular", TABULAR)
            assert (working.status_code, working.headers[TRACK_HEADER]) == (200, "canary")
            assert working.json()["outputs"][0]["data"] == [1, 2, 3, 4]
            failing = stable.infer("tabular", BIG)
            assert (failing.status_code, failing.headers[TRACK_HEADER]) == (500, "canary")
            assert failing.headers["content-type"] == "application/json"
            assert "inference failed" in failing.json()["error"]
            assert stable.metric("kubeloop_serving_routed_requests_total", route="canary", code="500") == 1
            assert stable.metric("kubeloop_serving_forward_duration_seconds_count", route="canary") == 2
            assert stable.metric("kubeloop_serving_route_fallbacks_total") == 0
            assert stable.metric("kubeloop_serving_requests_total") == 0  # nothing computed here
        assert canary.metric("kubeloop_serving_requests_total", track="canary", code="500") == 1


def test_ab_variants_are_sticky_per_key_and_weighted(tmp_path: Path, tabular_path: Path) -> None:
    with serve_in_thread(tabular_path, model_name="tabular", track="b") as variant_b:
        routes = Routes(
            ab=ABTest(
                header="X-User",
                variants=[
                    Variant(name="a", weight_percent=30),
                    Variant(name="b", url=variant_b.url, weight_percent=70),
                ],
            )
        )
        link = publish_routes(tmp_path / "routes", routes)
        with serve_in_thread(tabular_path, model_name="tabular", routes_file=str(link)) as stable:
            port = int(stable.url.rsplit(":", 1)[1])
            path = "/v2/models/tabular/infer"
            keys = [f"user-{index}" for index in range(2000)]
            # each key on its own connection, five times: one track per key
            per_key = [
                post_keepalive(
                    stable.url, [[request_bytes(port, path, TABULAR_BODY, {"X-User": key})] * 5]
                ).tracks
                for key in keys[:200]
            ]
            assert all(len(tracks) == 1 and sum(tracks.values()) == 5 for tracks in per_key)
            many = [
                [request_bytes(port, path, TABULAR_BODY, {"X-User": key}) for key in keys[i::4]]
                for i in range(4)
            ]
            shares = post_keepalive(stable.url, many).tracks
            assert set(shares) == {"a", "b"} and abs(shares["b"] / 2000 - 0.70) < 0.05, shares
            no_key = post_keepalive(stable.url, [[request_bytes(port, path, TABULAR_BODY)] * 250] * 4).tracks
            assert no_key == Counter({"b": 700, "a": 300})
            served_here = stable.metric("kubeloop_serving_requests_total", track="a", code="200")
            assert served_here == sum(t["a"] for t in per_key) + shares["a"] + 300
            wait_for(
                lambda: variant_b.metric("kubeloop_serving_requests_total", track="b") > 0, "b's metrics"
            )
