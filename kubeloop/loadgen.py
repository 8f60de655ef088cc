"""Steady OIP load counting every request: `kubeloop load URL --body FILE`, or `SteadyLoad` in a thread.

`connections` keep-alive clients together send about `rate` requests per second until stopped. Every
request counts: an answer other than 200, a timeout or a connection error is a failure. The command
stops on SIGTERM, SIGINT or when `--stop-file` appears, and prints the summary as one JSON line.
It runs in the kubeloop image, so load can come from inside a cluster (through a Service's DNS name and
ClusterIP, as clients do) rather than through a port-forward, which pins one pod.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from kubeloop.contracts.routing import TRACK_HEADER


@dataclass
class LoadResult:
    sent: int = 0
    answered: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)
    tracks: Counter[str] = field(default_factory=Counter)  # x-kubeloop-track: who computed the answer

    def summary(self) -> dict[str, Any]:
        lat = np.array(self.latencies_ms or [0.0])
        return {
            "sent": self.sent,
            "answered": self.answered,
            "failed": self.failed,
            "errors": dict(self.errors),
            "model_versions_answering": dict(self.versions),
            "tracks_answering": dict(self.tracks),
            "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2),
        }


async def steady_load(
    url: str,
    body: bytes,
    rate: float,
    stopped: Callable[[], bool],
    connections: int = 8,
    timeout: float = 10.0,
    result: LoadResult | None = None,
) -> LoadResult:
    """Send until `stopped()`; requests in flight then are finished and counted."""
    result = result if result is not None else LoadResult()
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    headers = {"Content-Type": "application/json"}
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout, headers=headers) as session:

        async def client() -> None:
            interval = connections / rate
            next_at = time.monotonic()
            while not stopped():
                next_at += interval
                await one_request(session, url, body, result)
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        await asyncio.gather(*(client() for _ in range(connections)))
    return result


async def one_request(session: aiohttp.ClientSession, url: str, body: bytes, result: LoadResult) -> None:
    result.sent += 1
    start = time.perf_counter()
    try:
        async with session.post(url, data=body) as response:
            payload = await response.json(content_type=None)
            if response.status != 200:
                result.failed += 1
                result.errors[f"HTTP {response.status}: {str(payload)[:120]}"] += 1
                return
            result.answered += 1
            result.versions[str(payload.get("model_version"))] += 1
            result.tracks[response.headers.get(TRACK_HEADER, "none")] += 1
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        result.failed += 1
        result.errors[f"{type(error).__name__}: {str(error)[:120]}"] += 1
        return
    result.latencies_ms.append((time.perf_counter() - start) * 1000)


class SteadyLoad:
    """`steady_load` in a background thread of this process, as a context manager."""

    def __init__(self, url: str, body: bytes, rate: float, connections: int = 8, timeout: float = 10.0):
        self.url, self.body, self.rate, self.connections, self.timeout = url, body, rate, connections, timeout
        self.result = LoadResult()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.started = 0.0

    def __enter__(self) -> SteadyLoad:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 30)
        return self.result

    def summary(self) -> dict[str, Any]:
        return self.result.summary()

    @property
    def rps(self) -> float:
        return self.result.answered / max(time.monotonic() - self.started, 1e-9)

    async def _run(self) -> None:
        await steady_load(
            self.url, self.body, self.rate, self._stop.is_set, self.connections, self.timeout, self.result
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubeloop load", description=__doc__)
    parser.add_argument("url", help="e.g. http://NAME.NAMESPACE.svc/v2/models/NAME/infer")
    parser.add_argument("--body", type=Path, required=True, help="the JSON request body, sent every time")
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second, all clients together")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a request may take")
    parser.add_argument("--stop-file", type=Path, help="stop once this file exists")
    args = parser.parse_args(argv)
    body = args.body.read_bytes()
    signalled = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: signalled.set())

    def stopped() -> bool:
        return signalled.is_set() or bool(args.stop_file and args.stop_file.exists())

    result = asyncio.run(steady_load(args.url, body, args.rate, stopped, args.connections, args.timeout))
    print(json.dumps(result.summary()), flush=True)
    return 0
