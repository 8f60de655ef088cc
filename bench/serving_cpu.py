"""CPU per inference request of kubeloop's REST hot path, without HTTP or a network in the way.

Drives the ASGI app of ``kubeloop serve`` (``kubeloop_serving.app.create_app``) in this process
with in-memory ``receive``/``send``: ``concurrency`` clients each post the benchmark's JSON body
(bench.serving_models) to ``/v2/models/{name}/infer`` one request after another, and the process's
CPU time (every thread, onnxruntime's included) is divided by the requests answered. What uvicorn
and httptools add (bench.serving_floors measures that floor) is left out, so the number moves with
kubeloop's own code only and does not depend on how loaded the machine is, which rps would.
The event loop is uvloop when installed, as under ``kubeloop serve``, unless ``--loop asyncio``.

    python -m bench.serving_cpu                          # MLP, batching off and on, c=1 and 64
    python -m bench.serving_cpu --model cnn --requests 400
    python -m bench.serving_cpu --profile 25             # also the top 25 functions (cProfile)

Prints JSON: per model x server x concurrency, ``cpu_us_per_request`` of each repetition and
their median. Every answer is checked to be a 200.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.serving_models import BenchModel, request_body, small_cnn, tabular_mlp

#: server name -> its KUBELOOP_SERVING_MAX_BATCH_SIZE (the same as bench.serving's kubeloop servers)
SERVERS: dict[str, int] = {"kubeloop": 1, "kubeloop_batching": 32}
MODELS: dict[str, Callable[[Path], BenchModel]] = {"mlp": tabular_mlp, "cnn": small_cnn}


def _loops() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loops to choose from, the server's first (uvloop when installed)."""
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is installed with uvicorn[standard]
        return loops
    return {"uvloop": uvloop.new_event_loop, **loops}


LOOPS = _loops()
Message = dict[str, Any]


class Harness:
    """One app with its model loaded, answering requests handed to it in memory."""

    def __init__(self, app: Any, path: str, body: bytes) -> None:
        self.app = app
        self.body = body
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1:8080"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
        }
        self.statuses: list[int] = []

    async def one(self) -> None:
        """One request, answered."""
        request: Message = {"type": "http.request", "body": self.body, "more_body": False}

        async def receive() -> Message:
            return request

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.statuses.append(message["status"])

        await self.app(dict(self.scope), receive, send)

    async def client(self, count: int) -> None:
        for _ in range(count):
            await self.one()


async def start_lifespan(app: Any) -> tuple[asyncio.Queue[Message], asyncio.Task[None]]:
    """Run the app's lifespan startup; its inbox (put ``lifespan.shutdown`` there) and its task."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")
    return inbox, task


async def measure(
    model: BenchModel, max_batch_size: int, concurrency: int, requests: int, repeats: int, profile: int
) -> dict[str, Any]:
    """Median CPU µs per request over ``repeats`` rounds of ``requests`` requests."""
    from kubeloop_serving.app import create_app
    from kubeloop_serving.settings import ServingSettings

    settings = ServingSettings(
        model_uri=str(model.path),
        model_name=model.name,
        intra_op_threads=1,
        log_level="warning",
        max_batch_size=max_batch_size,
    )
    app = create_app(settings)
    inbox, lifespan = await start_lifespan(app)
    dataplane = app.dataplane
    while not dataplane.ready:
        await asyncio.sleep(0.01)
    harness = Harness(app, f"/v2/models/{model.name}/infer", request_body(model))
    per_client = max(1, requests // concurrency)
    await asyncio.gather(*(harness.client(max(1, per_client // 4)) for _ in range(concurrency)))  # warm up
    samples = []
    profiler = cProfile.Profile() if profile else None
    for _ in range(repeats):
        harness.statuses.clear()
        if profiler is not None:
            profiler.enable()
        started = time.process_time()
        await asyncio.gather(*(harness.client(per_client) for _ in range(concurrency)))
        spent = time.process_time() - started
        if profiler is not None:
            profiler.disable()
        if set(harness.statuses) != {200} or len(harness.statuses) != per_client * concurrency:
            raise RuntimeError(f"unexpected answers: {sorted(set(harness.statuses))}")
        samples.append(round(spent / len(harness.statuses) * 1e6, 1))
    await inbox.put({"type": "lifespan.shutdown"})
    await lifespan
    result: dict[str, Any] = {
        "cpu_us_per_request": statistics.median(samples),
        "samples": samples,
        "requests": per_client * concurrency,
    }
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(profile)
        result["profile"] = text.getvalue()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=sorted(MODELS), action="append")
    parser.add_argument("--server", choices=sorted(SERVERS), action="append")
    parser.add_argument("--concurrency", type=int, action="append")
    parser.add_argument("--requests", type=int, default=4096, help="requests per repetition")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the top N functions")
    parser.add_argument("--loop", choices=sorted(LOOPS), default=next(iter(LOOPS)), help="event loop")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        for model_name in args.model or ["mlp"]:
            model = MODELS[model_name](Path(directory))
            for server in args.server or list(SERVERS):
                for concurrency in args.concurrency or [1, 64]:
                    key = f"{model_name}/{server}/c{concurrency}"
                    batch = SERVERS[server]
                    with asyncio.Runner(loop_factory=LOOPS[args.loop]) as runner:
                        result = runner.run(
                            measure(model, batch, concurrency, args.requests, args.repeats, args.profile)
                        )
                    if "profile" in result:
                        print(f"== {key}\n{result.pop('profile')}", file=sys.stderr)
                    results[key] = result
    print(json.dumps({"pid": os.getpid(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
