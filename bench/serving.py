"""Serving benchmark: kubeloop (batching off and on) against KServe and MLServer, side by side,
with the HTTP floor and the compute floor measured in the same run (bench.serving_floors).

Same generated ONNX models (a tabular MLP and a small CNN), same onnxruntime session options,
same pinned CPU and thread count for every server, same JSON payload, same closed-loop load
generator in its own process on other CPUs. Prints JSON: rps, p50_ms and p99_ms per model x
server x concurrency, onnxruntime's in-process rows/s, and the ratios of bench.serving_report.

    python -m bench.serving            # full run (about 12 minutes)
    python -m bench.serving --quick    # smoke run (about 2 minutes)

KServe (``kserve==0.21.0``) and MLServer (``mlserver==1.7.1``) live in their own virtualenvs,
``.venv-kserve`` and ``.venv-mlserver``, created on first use, so their pins never touch ours.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import serving_args
from bench.serving_models import BenchModel, request_body, small_cnn, tabular_mlp
from bench.serving_peers import PeerPythons, peer_python, peer_version
from bench.serving_report import goals, ratios
from bench.serving_servers import ServerSpec, cpu_per_call, running_servers, tree_cpu_seconds
from tests.fixtures.dataplane import dataplane_binary

ROOT = Path(__file__).resolve().parent.parent
SERVERS = (
    "kubeloop", "kubeloop_batching", "kubeloop_native",
    "kserve", "mlserver", "mlserver_batching", "http_floor",
)  # fmt: skip
#: Not run by default: kubeloop with every model run in its worker thread (INLINE_RUN_MICROS=0), and
#: with batches of up to 32 rows whatever their run takes (MAX_BATCH_RUN_MS=0).
OPTIONAL_SERVERS = ("kubeloop_threaded", "kubeloop_batching_unbudgeted")
PEER_PYTHONPATH = {"PYTHONPATH": f"{ROOT}:{ROOT / 'serving'}"}


def server_specs(model: BenchModel, threads: int, peers: PeerPythons) -> list[ServerSpec]:
    """Every server for one model, each told to use ``threads`` onnxruntime threads."""
    kubeloop_env = {
        "KUBELOOP_SERVING_MODEL_URI": str(model.path),
        "KUBELOOP_SERVING_MODEL_NAME": model.name,
        "KUBELOOP_SERVING_INTRA_OP_THREADS": str(threads),
        "KUBELOOP_SERVING_LOG_LEVEL": "warning",
    }
    kubeloop = [sys.executable, "-m", "kubeloop_serving"]
    mlserver = [
        str(peers.mlserver), "-m", "bench.serving_mlserver", str(model.path), model.name, "PORT", str(threads)
    ]  # fmt: skip
    return [
        ServerSpec(
            "kubeloop", kubeloop, {**kubeloop_env, "KUBELOOP_SERVING_MAX_BATCH_SIZE": "1"}, "PORT_ENV"
        ),
        ServerSpec(
            "kubeloop_native",
            kubeloop,
            {
                **kubeloop_env,
                "KUBELOOP_SERVING_DATAPLANE": "native",
                "KUBELOOP_SERVING_DATAPLANE_BINARY": str(dataplane_binary()),
            },
            "PORT_ENV",
        ),
        ServerSpec(
            "kubeloop_batching",
            kubeloop,
            {**kubeloop_env, "KUBELOOP_SERVING_MAX_BATCH_SIZE": "32"},
            "PORT_ENV",
        ),
        ServerSpec(
            "kubeloop_batching_unbudgeted",
            kubeloop,
            {
                **kubeloop_env,
                "KUBELOOP_SERVING_MAX_BATCH_SIZE": "32",
                "KUBELOOP_SERVING_MAX_BATCH_RUN_MS": "0",
            },
            "PORT_ENV",
        ),
        ServerSpec(
            "kubeloop_threaded",
            kubeloop,
            {
                **kubeloop_env,
                "KUBELOOP_SERVING_MAX_BATCH_SIZE": "1",
                "KUBELOOP_SERVING_INLINE_RUN_MICROS": "0",
            },
            "PORT_ENV",
        ),
        ServerSpec(
            "kserve",
            [
                str(peers.kserve),
                "-m",
                "bench.serving_kserve_server",
                str(model.path),
                model.name,
                "PORT",
                str(threads),
            ],
            {"PYTHONPATH": str(ROOT / "serving")},
            "PORT_ARG",
        ),
        *(
            ServerSpec(
                label,
                [*mlserver, str(batch)],
                PEER_PYTHONPATH,
                "PORT_ARG",
            )
            for label, batch in (("mlserver", 1), ("mlserver_batching", 32))
        ),
        ServerSpec(
            "http_floor", [sys.executable, "-m", "bench.serving_floors", "http", "PORT"], {}, "PORT_ARG"
        ),
    ]


def load(
    url: str, body_file: Path, *, concurrency: int, cpus: str, warmup: float, duration: float
) -> dict[str, Any]:
    """One load-generator run, pinned to ``cpus``, in its own process."""
    command = [
        "taskset", "-c", cpus, sys.executable, "-m", "bench.serving_loadgen", url, str(body_file),
        "--concurrency", str(concurrency), "--warmup", str(warmup), "--duration", str(duration),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over rounds of each figure; errors and non-200 answers summed.

    ``cpu_us_per_request`` is the server process's CPU time (all threads) per answered request: on a
    busy machine the fairest figure, since rps there also depends on the CPU share each server gets.
    """
    non_200 = sum(count for run in runs for code, count in run["statuses"].items() if code != "200")
    return {
        "rps": round(statistics.median(run["rps"] for run in runs), 1),
        "p50_ms": round(statistics.median(run["p50_ms"] for run in runs), 3),
        "p99_ms": round(statistics.median(run["p99_ms"] for run in runs), 3),
        "cpu_us_per_request": median_measured([run["cpu_us_per_request"] for run in runs]),
        "rounds": len(runs),
        "requests": sum(run["requests"] for run in runs),
        "non_200": non_200,
        "errors": sum(run["errors"] for run in runs),
    }


def median_measured(values: list[float]) -> float:
    measured = [value for value in values if not math.isnan(value)]
    return round(statistics.median(measured), 1) if measured else math.nan


def arguments() -> argparse.Namespace:
    parser = serving_args.parser("kubeloop vs KServe and MLServer serving benchmark (JSON)")
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS + OPTIONAL_SERVERS)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads per server")
    args = serving_args.parse(parser)
    args.threads = args.threads or serving_args.server_cpu_count(args)
    return args


def compute_floor(model: BenchModel, body_file: Path, args: argparse.Namespace) -> dict[str, float]:
    """onnxruntime in-process on the servers' CPUs (bench.serving_floors), in its own process."""
    command = [
        "taskset", "-c", args.server_cpus, sys.executable, "-m", "bench.serving_floors", "compute",
        str(model.path), str(body_file), str(args.threads), str(args.duration),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    floor: dict[str, float] = json.loads(done.stdout)
    return floor


def measure_model(
    model: BenchModel, args: argparse.Namespace, peers: PeerPythons, scratch: Path
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Every server x concurrency for one model, interleaved over rounds, and the compute floor
    (measured once per round while the servers idle); medians over rounds."""
    body_file = scratch / f"{model.name}.json"
    body_file.write_bytes(request_body(model))
    specs = [spec for spec in server_specs(model, args.threads, peers) if spec.label in args.servers]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    floors: list[dict[str, float]] = []
    pids: dict[str, int] = {}
    with running_servers(specs, args.server_cpus, ROOT, scratch, pids) as urls:
        for round_number in range(args.rounds):
            floors.append(compute_floor(model, body_file, args))
            print(f"{model.name} onnxruntime in-process: {floors[-1]}", file=sys.stderr)
            rotation = round_number % len(specs)
            for concurrency in args.concurrency:
                for spec in specs[rotation:] + specs[:rotation]:
                    url = f"{urls[spec.label]}/v2/models/{model.name}/infer"
                    cpu_before = tree_cpu_seconds(pids[spec.label])
                    run = load(
                        url,
                        body_file,
                        concurrency=concurrency,
                        cpus=args.loadgen_cpus,
                        warmup=args.warmup,
                        duration=args.duration,
                    )
                    cpu = tree_cpu_seconds(pids[spec.label]) - cpu_before
                    run["cpu_us_per_request"] = cpu_per_call(cpu, run["requests"], args.warmup, args.duration)
                    runs.setdefault((spec.label, concurrency), []).append(run)
                    print(f"{model.name} {spec.label} c={concurrency}: {run}", file=sys.stderr)
    points = [
        {"model": model.name, "server": label, "concurrency": concurrency, **summarise(measured)}
        for (label, concurrency), measured in runs.items()
    ]
    floor = {name: statistics.median(run[name] for run in floors) for name in floors[0]}
    return points, floor


def main() -> None:
    args = arguments()
    here = Path(sys.executable)
    peers = PeerPythons(
        kserve=peer_python("kserve") if "kserve" in args.servers else here,
        mlserver=peer_python("mlserver") if {"mlserver", "mlserver_batching"} & set(args.servers) else here,
    )
    builders: dict[str, Callable[[Path], BenchModel]] = {"mlp": tabular_mlp, "cnn": small_cnn}
    results: list[dict[str, Any]] = []
    floors: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="kubeloop-bench-") as scratch:
        for name in args.models:
            points, floors[name] = measure_model(builders[name](Path(scratch)), args, peers, Path(scratch))
            results += points
    ratio_rows = ratios(results, floors)
    report = {
        "environment": environment(args, peers),
        "results": results,
        "onnxruntime_in_process_rows_per_s": floors,
        "ratios": ratio_rows,
        "goals": goals(ratio_rows),
    }
    print(json.dumps(report, indent=2))


def environment(args: argparse.Namespace, peers: PeerPythons) -> dict[str, Any]:
    import onnxruntime

    return {
        "cpus_visible": len(os.sched_getaffinity(0)),
        "server_cpus": args.server_cpus,
        "loadgen_cpus": args.loadgen_cpus,
        "onnxruntime_threads_per_server": args.threads,
        "onnxruntime": onnxruntime.__version__,
        "kserve": peer_version(peers.kserve, "kserve"),
        "mlserver": peer_version(peers.mlserver, "mlserver"),
        "python": sys.version.split()[0],
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "rounds": args.rounds,
        "payload": "OIP v2 JSON, one row per request, flat data",
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }


if __name__ == "__main__":
    main()
