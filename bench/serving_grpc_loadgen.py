"""Closed-loop OIP v2 gRPC load generator (run as its own process; prints JSON).

``concurrency`` callers share one channel (one HTTP/2 connection, as a gRPC client does) and each
sends the same serialized ModelInferRequest (raw contents), waits for the answer and sends again.
The request is serialized once and answers are not parsed, so the client costs the same against
every server. Latency is per call; calls started during the warm-up are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc import aio

from bench.serving_loadgen import run_summary

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
UNBOUNDED = -1


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)


async def caller(
    infer: aio.UnaryUnaryMultiCallable[bytes, bytes],
    request: bytes,
    *,
    measure_from: float,
    stop_at: float,
    tally: Tally,
) -> None:
    while (started := time.perf_counter()) < stop_at:
        try:
            await infer(request, timeout=60)
            code = grpc.StatusCode.OK.name
        except aio.AioRpcError as error:
            code = error.code().name
        if started >= measure_from:
            tally.latencies.append(time.perf_counter() - started)
            tally.statuses[code] = tally.statuses.get(code, 0) + 1


async def run(
    target: str, request: bytes, concurrency: int, warmup_s: float, duration_s: float
) -> dict[str, object]:
    options = [("grpc.max_receive_message_length", UNBOUNDED), ("grpc.max_send_message_length", UNBOUNDED)]
    async with aio.insecure_channel(target, options=options) as channel:
        await channel.channel_ready()
        infer = channel.unary_unary(MODEL_INFER)
        measure_from = time.perf_counter() + warmup_s
        stop_at = measure_from + duration_s
        tally = Tally()
        await asyncio.gather(
            *(
                caller(infer, request, measure_from=measure_from, stop_at=stop_at, tally=tally)
                for _ in range(concurrency)
            )
        )
    return run_summary(tally.latencies, tally.statuses, duration_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", help="host:port of the gRPC server")
    parser.add_argument("request", type=Path, help="file holding a serialized ModelInferRequest")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not measured")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured")
    args = parser.parse_args()
    summary = asyncio.run(
        run(args.target, args.request.read_bytes(), args.concurrency, args.warmup, args.duration)
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
