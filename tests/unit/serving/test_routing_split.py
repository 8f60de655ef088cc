"""The canary split, end to end: a stable server (its own process) forwards an exact share of
requests from several keep-alive connections to a real canary server; weights change by
republishing the routes the way the kubelet updates a ConfigMap volume, without a restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kubeloop.contracts.routing import FORWARDED_HEADER, Canary, Routes
from tests.fixtures.serve import ServerProcess
from tests.unit.serving.conftest import metric_value, wait_for
from tests.unit.serving.routing_helpers import TABULAR_BODY, post_keepalive, publish_routes, request_bytes

pytestmark = pytest.mark.unit
REQUESTS = 10_000
CONNECTIONS = 4
INFER = "/v2/models/tabular/infer"


class Pair:
    def __init__(self, stable: ServerProcess, canary: ServerProcess, routes_dir: Path) -> None:
        self.stable, self.canary, self.routes_dir = stable, canary, routes_dir

    def metric(self, name: str, **labels: str) -> float:
        return metric_value(httpx.get(f"{self.stable.url}/metrics", timeout=10).text, name, **labels)

    def publish(self, weight: int) -> None:
        publish_routes(
            self.routes_dir,
            Routes(generation=weight, canary=Canary(url=self.canary.url, weight_percent=weight)),
        )
        wait_for(
            lambda: self.metric("kubeloop_serving_routes_generation") == weight, f"weight {weight} in effect"
        )

    def requests(self, total: int, headers: dict[str, str] | None = None) -> list[list[bytes]]:
        one = request_bytes(self.stable.port, INFER, TABULAR_BODY, headers)
        return [[one] * (total // CONNECTIONS) for _ in range(CONNECTIONS)]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, tabular_path: Path) -> Iterator[Pair]:
    scratch = tmp_path_factory.mktemp("split")
    canary = ServerProcess(
        scratch / "canary.log", model_uri=str(tabular_path), model_name="tabular", track="canary"
    )
    link = publish_routes(scratch / "routes", Routes(canary=Canary(url=canary.url, weight_percent=0)))
    stable = ServerProcess(
        scratch / "stable.log",
        model_uri=str(tabular_path),
        model_name="tabular",
        routes_file=str(link),
        routes_poll_seconds="0.1",
    )
    try:
        assert canary.wait_ready(), canary.output
        assert stable.wait_ready(), stable.output
        yield Pair(stable, canary, scratch / "routes")
    finally:
        stable.kill()
        canary.kill()


@pytest.mark.parametrize("weight", [1, 5, 10, 25, 50])
def test_the_canary_gets_its_weight_in_requests_from_keepalive_clients(pair: Pair, weight: int) -> None:
    pair.publish(weight)
    fallbacks = pair.metric("kubeloop_serving_route_fallbacks_total")
    observed = post_keepalive(pair.stable.url, pair.requests(REQUESTS))
    assert observed.statuses == {200: REQUESTS}
    share = 100 * observed.tracks["canary"] / REQUESTS
    print(json.dumps({"weight_percent": weight, "requests": REQUESTS, "canary_share_percent": share}))
    assert abs(share - weight) <= 1
    assert observed.tracks["canary"] + observed.tracks["stable"] == REQUESTS
    if pair.metric("kubeloop_serving_route_fallbacks_total") == fallbacks:
        assert observed.tracks["canary"] == REQUESTS * weight // 100  # the counter is exact
    assert pair.metric("kubeloop_serving_route_weight_percent", route="canary") == weight


def test_forwarded_requests_are_never_forwarded_again(pair: Pair) -> None:
    pair.publish(50)
    observed = post_keepalive(pair.stable.url, pair.requests(400, {FORWARDED_HEADER: "stable"}))
    assert observed.tracks == {"stable": 400}


def test_an_invalid_routes_file_keeps_the_table_in_effect(pair: Pair) -> None:
    pair.publish(10)
    errors = pair.metric("kubeloop_serving_routes_reload_errors_total")
    publish_routes(pair.routes_dir, '{"canary": {"url": "", "weight_percent": 70}}')
    wait_for(
        lambda: pair.metric("kubeloop_serving_routes_reload_errors_total") == errors + 1, "the reload error"
    )
    observed = post_keepalive(pair.stable.url, pair.requests(1000))
    assert observed.tracks == {"canary": 100, "stable": 900}
    assert pair.metric("kubeloop_serving_route_weight_percent", route="canary") == 10
