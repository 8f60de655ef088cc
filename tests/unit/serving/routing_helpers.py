"""Helpers for the routing tests: a ConfigMap-style routes directory, a keep-alive client, small models."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from kubeloop.contracts.routing import ROUTES_KEY, TRACK_HEADER, Routes
from tests.unit.serving.conftest import _save

TABULAR_BODY = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}'


def publish_routes(directory: Path, routes: Routes | str) -> Path:
    """Write routes the way the kubelet updates a ConfigMap volume: a new timestamped directory,
    a ``..data_tmp`` symlink to it renamed over ``..data``, and ``routes.json -> ..data/routes.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    version = directory / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    version.mkdir()
    (version / ROUTES_KEY).write_text(routes if isinstance(routes, str) else routes.to_json())
    temporary = directory / "..data_tmp"
    temporary.symlink_to(version.name)
    os.replace(temporary, directory / "..data")
    link = directory / ROUTES_KEY
    if not link.is_symlink():
        link.symlink_to(f"..data/{ROUTES_KEY}")
    return link


@dataclass
class Observed:
    """What the client saw: answers per track and per status, and each request's latency."""

    tracks: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def percentile_ms(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 2)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return int(lines[0].split()[1]), headers, body


async def _connection(port: int, requests: Sequence[bytes], observed: Observed, keep_bodies: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request in requests:
            started = time.perf_counter()
            writer.write(request)
            status, headers, body = await _read_response(reader)
            observed.latencies.append(time.perf_counter() - started)
            observed.tracks[headers.get(TRACK_HEADER.encode(), b"").decode()] += 1
            observed.statuses[status] += 1
            if keep_bodies:
                observed.bodies.append(body)
    finally:
        writer.close()


def request_bytes(port: int, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"{extra}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def post_keepalive(
    url: str, per_connection: Sequence[Sequence[bytes]], keep_bodies: bool = False
) -> Observed:
    """Each list of raw requests sent in order on its own keep-alive connection, all connections at once."""
    port = int(url.rsplit(":", 1)[1])
    observed = Observed()

    async def run() -> None:
        await asyncio.gather(
            *(_connection(port, requests, observed, keep_bodies) for requests in per_connection)
        )

    asyncio.run(run())
    return observed


def threshold_model(path: Path, threshold: float) -> Path:
    """x [N, 1] FP32 -> label [N] INT64 = x > threshold, echo [N, 1] FP32 = x."""
    graph = helper.make_graph(
        [
            helper.make_node("Greater", ["x", "t"], ["above"]),
            helper.make_node("Squeeze", ["above", "axis"], ["flat"]),
            helper.make_node("Cast", ["flat"], ["label"], to=TensorProto.INT64),
            helper.make_node("Identity", ["x"], ["echo"]),
        ],
        "threshold",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("echo", TensorProto.FLOAT, ["N", 1]),
        ],
        [
            numpy_helper.from_array(np.array(threshold, np.float32), "t"),
            numpy_helper.from_array(np.array([1], np.int64), "axis"),
        ],
    )
    return _save(graph, path)


def broken_model(path: Path) -> Path:
    """x [N, 4] FP32 -> y = x reshaped to [-1, 4], or to [-1, 5] when any x > 100: such inputs pass
    validation and make onnxruntime fail (not on the input's account), so the server answers 500."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMax", ["x"], ["peak"], keepdims=0),
            helper.make_node("Greater", ["peak", "hundred"], ["big"]),
            helper.make_node("Cast", ["big"], ["extra"], to=TensorProto.INT64),
            helper.make_node("Add", ["extra", "four"], ["width"]),
            helper.make_node("Concat", ["minus_one", "width"], ["shape"], axis=0),
            helper.make_node("Reshape", ["x", "shape"], ["y"]),
        ],
        "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [
            numpy_helper.from_array(np.array(100, np.float32), "hundred"),
            numpy_helper.from_array(np.array([4], np.int64), "four"),
            numpy_helper.from_array(np.array([-1], np.int64), "minus_one"),
        ],
    )
    return _save(graph, path)
