"""The shadow with real servers: agreement counted and logged per row, a slow shadow never felt."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest
import uvicorn

from kubeloop.contracts.routing import Routes, Shadow
from tests.fixtures.ports import free_port
from tests.unit.serving.conftest import logged_rows, serve_in_thread, wait_for
from tests.unit.serving.routing_helpers import (
    TABULAR_BODY,
    post_keepalive,
    publish_routes,
    request_bytes,
    threshold_model,
)

pytestmark = pytest.mark.unit


def threshold_request(value: float) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [value]}]}


def test_agreement_with_a_shadow_that_differs_on_a_known_share(tmp_path: Path) -> None:
    # stable says x > 0.5, the shadow x > 0.7: they disagree exactly on 0.5 < x <= 0.7
    values = [index / 100 + 0.005 for index in range(100)]
    disagreeing = sum(0.5 < value <= 0.7 for value in values)
    sink = tmp_path / "payloads"
    with serve_in_thread(
        threshold_model(tmp_path / "t7.onnx", 0.7), model_name="m", track="shadow"
    ) as shadow:
        link = publish_routes(tmp_path / "routes", Routes(shadow=Shadow(url=shadow.url, percent=100)))
        with serve_in_thread(
            threshold_model(tmp_path / "t5.onnx", 0.5),
            model_name="m",
            routes_file=str(link),
            payload_log_uri=str(sink),
            payload_log_flush_seconds=60,
        ) as stable:
            for value in values:
                answer = stable.infer("m", threshold_request(value))
                assert answer.json()["outputs"][0]["data"] == [int(value > 0.5)]
            rows = "kubeloop_serving_shadow_rows_total"

            def compared() -> float:
                return stable.metric(rows, result="agree") + stable.metric(rows, result="disagree")

            wait_for(lambda: compared() == len(values), "every shadow answer compared")
            assert stable.metric(rows, result="disagree") == disagreeing == 20
            assert stable.metric(rows, result="agree") == len(values) - disagreeing
            assert stable.metric("kubeloop_serving_shadow_requests_total", code="200") == len(values)
            classes = "kubeloop_serving_predicted_class_total"
            assert stable.metric(classes, track="stable", **{"class": "1"}) == 50
        assert shadow.metric(classes, track="shadow", **{"class": "1"}) == 30
    table = logged_rows(str(sink), "m")
    shadow_rows = table.filter(pc.equal(table.column("_track"), "shadow"))
    stable_rows = table.filter(pc.equal(table.column("_track"), "stable"))
    assert (shadow_rows.num_rows, stable_rows.num_rows) == (100, 100)
    assert shadow_rows.column("_agrees").to_pylist().count(False) == disagreeing
    assert stable_rows.column("_agrees").null_count == 100
    assert np.array_equal(
        np.sort(shadow_rows.column("x_0").to_numpy()), np.sort(stable_rows.column("x_0").to_numpy())
    )


async def _sleepy_shadow(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A shadow that takes one second per request, then answers like the tabular model would not."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    await asyncio.sleep(1.0)
    body = b'{"model_name":"tabular","model_version":"9","outputs":[]}'
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def sleepy_shadow() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(_sleepy_shadow, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the sleepy shadow")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_slow_shadow_neither_delays_nor_changes_answers(tmp_path: Path, tabular_path: Path) -> None:
    routes_dir = tmp_path / "routes"
    link = publish_routes(routes_dir, Routes(generation=1))
    with (
        sleepy_shadow() as shadow_url,
        serve_in_thread(
            tabular_path,
            model_name="tabular",
            routes_file=str(link),
            routes_poll_seconds=0.1,
            shadow_concurrency=2,
        ) as stable,
    ):
        port = int(stable.url.rsplit(":", 1)[1])
        load = [[request_bytes(port, "/v2/models/tabular/infer", TABULAR_BODY)] * 150] * 2
        without = post_keepalive(stable.url, load, keep_bodies=True)
        publish_routes(
            routes_dir, Routes(generation=2, shadow=Shadow(url=shadow_url, percent=100, queue_size=5))
        )
        wait_for(lambda: stable.metric("kubeloop_serving_routes_generation") == 2, "the shadow route")
        with_shadow = post_keepalive(stable.url, load, keep_bodies=True)
        print(
            json.dumps(
                {
                    "caller_without_shadow": {
                        "p50_ms": without.percentile_ms(0.5),
                        "p99_ms": without.percentile_ms(0.99),
                    },
                    "caller_with_1s_shadow": {
                        "p50_ms": with_shadow.percentile_ms(0.5),
                        "p99_ms": with_shadow.percentile_ms(0.99),
                    },
                }
            )
        )
        assert with_shadow.statuses == {200: 300} and with_shadow.tracks == {"stable": 300}
        answers = {_without_id(body) for body in with_shadow.bodies}
        assert answers == {_without_id(body) for body in without.bodies} and len(answers) == 1
        # two copies in flight, five queued: the rest of the 300 arrived to a full queue
        assert 0 < stable.metric("kubeloop_serving_shadow_dropped_total") <= 300 - 2 - 5
        assert (
            stable.metric("kubeloop_serving_shadow_rows_total") == 0
        )  # its answer has no outputs to compare


def _without_id(body: bytes) -> bytes:
    """The answer without its (generated, per request) id."""
    document = json.loads(body)
    document.pop("id", None)
    return json.dumps(document, sort_keys=True).encode()
