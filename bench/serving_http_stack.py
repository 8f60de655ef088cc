"""Would another HTTP stack serve faster? uvicorn + httptools + uvloop (ours) against granian (Rust:
hyper and tokio, BSD-3-Clause), for the bare HTTP floor and for this server's own ASGI app.

Rows, each pinned to the same CPU, driven by the same load generator (bench.serving_loadgen) on the
other CPUs, interleaved over rounds (medians):

* ``floor_uvicorn``: bench.serving_floors' fixed answer under uvicorn, as in bench.serving;
* ``floor_granian_asgi``, ``floor_granian_rsgi``: the same answer under granian, through its ASGI
  interface and through RSGI, its own (the app would have to be rewritten for RSGI);
* ``kubeloop_uvicorn``: ``python -m kubeloop_serving`` (batching on, the default);
* ``kubeloop_granian``: the same ASGI app (kubeloop_serving.app.create_app) under granian's ASGI
  interface: no connection aging, drain or gRPC there, so it does less than the row above.

``ratios`` has granian over uvicorn for the floor and for the app (rps and CPU per request).
granian lives in ``.venv-granian`` (``pip install --target``), made on first use.

    python -m bench.serving_http_stack            # MLP c=1 and 64, CNN c=64, 3 rounds of 5 s
    python -m bench.serving_http_stack --quick
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import serving_args
from bench.serving import load, summarise
from bench.serving_floors import FIXED_BODY
from bench.serving_models import BenchModel, request_body, small_cnn, tabular_mlp
from bench.serving_servers import ServerSpec, running_servers, tree_cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
GRANIAN_VERSION = "2.8.9"
GRANIAN = ROOT / ".venv-granian"
POINTS = (("mlp", 1), ("mlp", 64), ("cnn", 64))
RSGI_HEADERS = [("content-type", "application/json")]


async def rsgi_fixed_answer(scope: Any, protocol: Any) -> None:
    """The HTTP floor in RSGI: read the body, answer FIXED_BODY (any path)."""
    await protocol()
    protocol.response_bytes(200, RSGI_HEADERS, FIXED_BODY)


def kubeloop_app() -> Callable[[Any, Any, Any], Awaitable[None]]:
    """This server's ASGI app from KUBELOOP_SERVING_* (granian's --factory)."""
    from kubeloop_serving.app import create_app
    from kubeloop_serving.settings import ServingSettings

    return create_app(ServingSettings())


def granian_path() -> Path:
    """Where granian is importable from; installed there on first use."""
    probe = [sys.executable, "-c", f"import granian; assert granian.__version__ == '{GRANIAN_VERSION}'"]
    env = {"PYTHONPATH": str(GRANIAN)}
    if subprocess.run(probe, env=env, check=False, capture_output=True).returncode != 0:
        print(f"installing granian {GRANIAN_VERSION} into {GRANIAN} ...", file=sys.stderr)
        pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--upgrade"]
        subprocess.run([*pip, "--target", str(GRANIAN), f"granian=={GRANIAN_VERSION}"], check=True)
    return GRANIAN


def specs(model: BenchModel, granian: Path) -> list[ServerSpec]:
    kubeloop_env = {
        "KUBELOOP_SERVING_MODEL_URI": str(model.path),
        "KUBELOOP_SERVING_MODEL_NAME": model.name,
        "KUBELOOP_SERVING_INTRA_OP_THREADS": "1",
        "KUBELOOP_SERVING_LOG_LEVEL": "warning",
        "KUBELOOP_SERVING_GRPC_PORT": "0",
    }
    path = {"PYTHONPATH": f"{granian}:{ROOT}:{ROOT / 'serving'}"}
    run = [sys.executable, "-m", "granian", "--host", "127.0.0.1", "--port", "PORT", "--workers", "1"]
    run += ["--runtime-mode", "st", "--runtime-threads", "1", "--loop", "uvloop", "--no-ws"]
    run += ["--http", "1", "--log-level", "warning"]
    floor = [sys.executable, "-m", "bench.serving_floors", "http", "PORT"]
    return [
        ServerSpec("floor_uvicorn", floor, {}, "PORT_ARG"),
        ServerSpec(
            "floor_granian_asgi",
            [*run, "--interface", "asgi", "bench.serving_floors:fixed_answer"],
            path,
            "PORT_ARG",
        ),
        ServerSpec(
            "floor_granian_rsgi",
            [*run, "--interface", "rsgi", "bench.serving_http_stack:rsgi_fixed_answer"],
            path,
            "PORT_ARG",
        ),
        ServerSpec("kubeloop_uvicorn", [sys.executable, "-m", "kubeloop_serving"], kubeloop_env, "PORT_ENV"),
        ServerSpec(
            "kubeloop_granian",
            [*run, "--interface", "asgi", "--factory", "bench.serving_http_stack:kubeloop_app"],
            {**kubeloop_env, **path},
            "PORT_ARG",
        ),
    ]


def measure(
    model: BenchModel, concurrencies: list[int], args: Any, granian: Path, scratch: Path
) -> list[Any]:
    body = scratch / f"{model.name}.json"
    body.write_bytes(request_body(model))
    servers = specs(model, granian)
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    pids: dict[str, int] = {}
    with running_servers(servers, args.server_cpus, ROOT, scratch, pids) as urls:
        for round_number in range(args.rounds):
            rotation = round_number % len(servers)
            for concurrency in concurrencies:
                for spec in servers[rotation:] + servers[:rotation]:
                    before = tree_cpu_seconds(pids[spec.label])
                    run = load(
                        f"{urls[spec.label]}/v2/models/{model.name}/infer",
                        body,
                        concurrency=concurrency,
                        cpus=args.loadgen_cpus,
                        warmup=args.warmup,
                        duration=args.duration,
                    )
                    served = run["requests"] * (args.warmup + args.duration) / args.duration
                    cpu = tree_cpu_seconds(pids[spec.label]) - before
                    run["cpu_us_per_request"] = round(cpu / served * 1e6, 1) if served else math.nan
                    runs.setdefault((spec.label, concurrency), []).append(run)
                    print(f"{model.name} {spec.label} c={concurrency}: {run['rps']} rps", file=sys.stderr)
    return [
        {"model": model.name, "server": label, "concurrency": c, **summarise(measured)}
        for (label, c), measured in runs.items()
    ]


def stack_ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """granian over uvicorn, per model and concurrency: the floor (ASGI and RSGI) and the app."""
    at = {(r["model"], r["concurrency"], r["server"]): r for r in results}
    rows = []
    for model, concurrency in sorted({(r["model"], r["concurrency"]) for r in results}):
        row: dict[str, Any] = {"model": model, "concurrency": concurrency}
        for name, ours, theirs in (
            ("floor_asgi", "floor_uvicorn", "floor_granian_asgi"),
            ("floor_rsgi", "floor_uvicorn", "floor_granian_rsgi"),
            ("kubeloop_asgi", "kubeloop_uvicorn", "kubeloop_granian"),
        ):
            a, b = at.get((model, concurrency, ours)), at.get((model, concurrency, theirs))
            if a and b and a["rps"]:
                row[f"granian_over_uvicorn_rps_{name}"] = round(b["rps"] / a["rps"], 2)
                row[f"granian_over_uvicorn_cpu_{name}"] = round(
                    b["cpu_us_per_request"] / a["cpu_us_per_request"], 2
                )
        if at.get((model, concurrency, "floor_uvicorn")) and at.get((model, concurrency, "kubeloop_uvicorn")):
            floor = at[(model, concurrency, "floor_uvicorn")]["rps"]
            row["kubeloop_uvicorn_over_floor_uvicorn"] = round(
                at[(model, concurrency, "kubeloop_uvicorn")]["rps"] / floor, 2
            )
        rows.append(row)
    return rows


def main() -> None:
    args = serving_args.parse(
        serving_args.parser("uvicorn vs granian: the HTTP floor and kubeloop's app (JSON)")
    )
    granian = granian_path()
    builders: dict[str, Callable[[Path], BenchModel]] = {"mlp": tabular_mlp, "cnn": small_cnn}
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kubeloop-bench-") as scratch:
        for name in dict.fromkeys(m for m, _ in POINTS):
            concurrencies = [c for m, c in POINTS if m == name]
            results += measure(builders[name](Path(scratch)), concurrencies, args, granian, Path(scratch))
    report = {
        "environment": {
            "granian": GRANIAN_VERSION,
            "server_cpus": args.server_cpus,
            "loadgen_cpus": args.loadgen_cpus,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "granian_options": "1 worker, single-threaded runtime, 1 runtime thread, uvloop, HTTP/1.1",
        },
        "results": results,
        "ratios": stack_ratios(results),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
