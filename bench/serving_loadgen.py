"""Closed-loop HTTP/1.1 keep-alive load generator (run as its own process; prints JSON).

``concurrency`` connections each send the same POST, wait for the whole response, and send
again. Latency is measured per request from write to last byte; requests started during the
warm-up are not counted. Raw asyncio streams (uvloop when installed) keep the client far
cheaper than the servers it drives.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HEADER_END = b"\r\n\r\n"


@dataclass
class Tally:
    """What the connections observed after the warm-up."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0


def http_request(host: str, port: int, path: str, body: bytes) -> bytes:
    """The raw keep-alive POST sent over and over."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response (Content-Length or chunked body): its status code, and whether the server
    closes the connection after it (``Connection: close``, as kubeloop's aged connections get)."""
    head = await reader.readuntil(_HEADER_END)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, headers.get(b"connection", b"").lower() == b"close"


async def connection(
    address: tuple[str, int], request: bytes, *, measure_from: float, stop_at: float, tally: Tally
) -> None:
    """One keep-alive connection in a closed loop until ``stop_at`` (connecting again when the server
    ends it; the reconnection counts in the next request's latency)."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        while (started := time.perf_counter()) < stop_at:
            writer.write(request)
            try:
                status, closing = await read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                tally.errors += 1
                return
            if started >= measure_from:
                tally.latencies.append(time.perf_counter() - started)
                tally.statuses[status] = tally.statuses.get(status, 0) + 1
            if closing:
                writer.close()
                reader, writer = await asyncio.open_connection(*address)
    finally:
        writer.close()


def percentile(sorted_values: list[float], share: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(share * len(sorted_values)) - 1))
    return sorted_values[rank]


def run_summary(latencies: list[float], statuses: Mapping[Any, int], duration_s: float) -> dict[str, object]:
    """Requests, rps, p50 and p99 (ms) of what was measured, and how many got each status."""
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "rps": round(len(ordered) / duration_s, 1),
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 3),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 3),
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
    }


async def run(
    url: str, body: bytes, concurrency: int, warmup_s: float, duration_s: float
) -> dict[str, object]:
    """Drive the server and summarise what was measured."""
    address, _, path = url.removeprefix("http://").partition("/")
    host, _, port_text = address.partition(":")
    port = int(port_text)
    request = http_request(host, port, "/" + path, body)
    measure_from = time.perf_counter() + warmup_s
    stop_at = measure_from + duration_s
    tally = Tally()
    await asyncio.gather(
        *(
            connection((host, port), request, measure_from=measure_from, stop_at=stop_at, tally=tally)
            for _ in range(concurrency)
        )
    )
    return {**run_summary(tally.latencies, tally.statuses, duration_s), "errors": tally.errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url", help="http://host:port/path")
    parser.add_argument("body", type=Path, help="file holding the request body")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not measured")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    summary = asyncio.run(run(args.url, args.body.read_bytes(), args.concurrency, args.warmup, args.duration))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
