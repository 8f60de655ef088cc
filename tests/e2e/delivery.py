"""Helpers of the progressive-delivery e2e tests: keyed clients, Prometheus sums, the routes every stable
pod applies, and the tracks the payload log recorded."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import grpc
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kubeloop.contracts.routing import TRACK_HEADER
from kubeloop_serving.oip_grpc import grpc_predict_v2_pb2 as pb
from kubeloop_serving.oip_grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from tests.e2e.loop import SERVER, Loop
from tests.e2e.platform import Platform


def keyed_requests(url: str, body: bytes, users: int, repeats: int) -> list[tuple[str, str, tuple[int, ...]]]:
    """Each of `users` user ids sends `repeats` requests (x-user-id), 8 keep-alive clients in all:
    (user, the track that answered, the predicted labels)."""

    async def run() -> list[tuple[str, str, tuple[int, ...]]]:
        queue = [f"user-{u}" for _ in range(repeats) for u in range(users)]
        seen: list[tuple[str, str, tuple[int, ...]]] = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8)) as session:

            async def client() -> None:
                while queue:
                    user = queue.pop()
                    headers = {"Content-Type": "application/json", "x-user-id": user}
                    async with session.post(url, data=body, headers=headers) as response:
                        answer = await response.json(content_type=None)
                        assert response.status == 200, answer
                        label = next(o for o in answer["outputs"] if o["datatype"] == "INT64")
                        seen.append((user, response.headers[TRACK_HEADER], tuple(label["data"])))

            await asyncio.gather(*(client() for _ in range(8)))
        return seen

    return asyncio.run(run())


def grpc_tracks(target: str, body: bytes, calls: int) -> Counter[str]:
    """`calls` ModelInfer calls of the REST `body`'s tensor (raw contents), one after the other on one
    channel (one HTTP/2 connection: one stable pod): how many each track answered."""
    (tensor,) = orjson.loads(body)["inputs"]
    request = pb.ModelInferRequest(model_name=SERVER)
    request.inputs.add(name=tensor["name"], datatype="FP32", shape=tensor["shape"])
    request.raw_input_contents.append(np.asarray(tensor["data"], "<f4").tobytes())
    tracks: Counter[str] = Counter()
    with grpc.insecure_channel(target) as channel:
        stub = GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]  # generated, untyped
        for _ in range(calls):
            response, call = stub.ModelInfer.with_call(request, timeout=30)
            assert len(response.outputs) > 0
            tracks[dict(call.trailing_metadata())[TRACK_HEADER]] += 1
    return tracks


def prometheus_sum(platform: Platform, query: str, by: str) -> dict[str, float]:
    answer = platform.prometheus("/api/v1/query", query=f"sum by ({by}) ({query})")
    return {r["metric"].get(by, ""): float(r["value"][1]) for r in answer["data"]["result"]}


def routes_on_every_stable_pod(platform: Platform, namespace: str, weights: dict[str, float]) -> bool:
    """Two stable pods, ready, not terminating, each applying `weights` (route -> percent): a route
    is listed at 0 while its track has no ready replica, so its presence alone is not enough."""
    selector = f"kubeloop.io/modeldeployment={SERVER},kubeloop.io/track=stable"
    pods = {
        p["metadata"]["name"]
        for p in platform.kubectl.items("pods", namespace, selector)
        if "deletionTimestamp" not in p["metadata"]
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    }
    query = f'kubeloop_serving_route_weight_percent{{namespace="{namespace}"}}'
    answer = platform.prometheus("/api/v1/query", query=query)
    applied: dict[str, dict[str, float]] = {}
    for series in answer["data"]["result"]:
        labels = series["metric"]
        applied.setdefault(labels.get("pod", ""), {})[labels.get("route", "")] = float(series["value"][1])
    return len(pods) == 2 and all(
        all(applied.get(pod, {}).get(route) == weight for route, weight in weights.items()) for pod in pods
    )


def logged_tracks(platform: Platform, loop: Loop, since_ms: int) -> pa.Table:
    s3 = platform.s3()
    files = s3.glob(f"{loop.payloads}/{SERVER}/dt=*/*.parquet")
    wanted = ("_timestamp", "_track", "_agrees")  # files written before any shadow have no _agrees
    tables = []
    for file in files:
        names = pq.read_schema(file, filesystem=s3).names
        tables.append(pq.read_table(file, filesystem=s3, columns=[c for c in wanted if c in names]))
    table = pa.concat_tables(tables, promote_options="permissive")
    millis = table.column("_timestamp").cast(pa.int64())  # timestamp[ms, UTC] as epoch milliseconds
    return table.filter(pc.greater_equal(millis, since_ms))
