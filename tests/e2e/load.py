"""Steady OIP load from this host through a Service, counting every request (a background thread)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
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


class SteadyLoad:
    """`connections` keep-alive clients, together sending about `rate` requests per second until stopped.

    Every request counts: an answer other than 200, a timeout or a connection error is a failure.
    """

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

    @property
    def rps(self) -> float:
        return self.result.answered / max(time.monotonic() - self.started, 1e-9)

    async def _run(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.connections, force_close=False)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        headers = {"Content-Type": "application/json"}
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
            await asyncio.gather(*(self._client(session) for _ in range(self.connections)))

    async def _client(self, session: aiohttp.ClientSession) -> None:
        interval = self.connections / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            next_at += interval
            await self._one(session)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _one(self, session: aiohttp.ClientSession) -> None:
        result = self.result
        result.sent += 1
        start = time.perf_counter()
        try:
            async with session.post(self.url, data=self.body) as response:
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
