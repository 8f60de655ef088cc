"""kubeloop_serving_inflight_requests counts requests inside the data plane, read at scrape time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.serving_cpu import start_lifespan
from kubeloop_serving.app import create_app
from kubeloop_serving.datatypes import Tensors
from kubeloop_serving.settings import ServingSettings
from tests.unit.serving.conftest import metric_value

pytestmark = pytest.mark.unit

GOOD = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]})
BAD = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]})


def inflight(app: Any) -> float:
    exposition = app.dataplane.metrics.exposition().decode()
    return metric_value(exposition, "kubeloop_serving_inflight_requests", model="tabular")


async def post(app: Any, body: bytes) -> int:
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {"type": "http", "method": "POST", "path": "/v2/models/tabular/infer", "headers": []}
    await app(scope, receive, send)
    return statuses[0]


@pytest.mark.parametrize("max_batch_size", [1, 8])
def test_inflight_counts_requests_being_computed_and_returns_to_zero(
    tabular_path: Path, max_batch_size: int
) -> None:
    async def scenario() -> list[float]:
        app: Any = create_app(
            ServingSettings(model_uri=str(tabular_path), model_name="tabular", max_batch_size=max_batch_size)
        )
        lifespan_in, lifespan = await start_lifespan(app)
        while not app.dataplane.ready:
            await asyncio.sleep(0.01)
        runner = app.dataplane._runner
        real_infer: Callable[[Tensors, int], Awaitable[Tensors]] = runner.infer
        gate = asyncio.Event()

        async def held(inputs: Tensors, rows: int) -> Tensors:
            await gate.wait()
            return await real_infer(inputs, rows)

        runner.infer = held
        seen = [inflight(app)]
        requests = [asyncio.create_task(post(app, GOOD)) for _ in range(3)]
        await asyncio.sleep(0.05)
        seen.append(inflight(app))
        gate.set()
        assert await asyncio.gather(*requests) == [200] * 3
        seen.append(inflight(app))
        assert await post(app, BAD) == 400
        seen.append(inflight(app))
        await lifespan_in.put({"type": "lifespan.shutdown"})
        await lifespan
        return seen

    assert asyncio.run(scenario()) == [0, 3, 0, 0]
