"""gRPC benchmark: kubeloop's OIP v2 gRPC against its REST, and against KServe's gRPC, side by side.

Same generated models (bench/serving_models.py: tabular MLP, small CNN), same onnxruntime session
options, every server pinned to the same CPUs with the same thread count, load generators in their
own processes on the other CPUs. REST requests are OIP JSON (bench.serving_loadgen, one keep-alive
connection per caller); gRPC requests are ModelInferRequest with raw contents (bench.serving_grpc_loadgen,
one channel). kubeloop runs with its default batching (MAX_BATCH_SIZE 32, MAX_BATCH_RUN_MS 10) and
serves both protocols from one process; KServe 0.21.0 (its .venv-kserve) serves both from one
ModelServer. The floor (bench.serving_floors grpc) answers both protocols at once with a fixed body
from one process: what uvicorn + httptools and grpcio cost before any server does its own work.
Prints JSON: rps, p50_ms, p99_ms and the server's CPU per answered call (cpu_us_per_request, all
its threads) per model x server x protocol x concurrency, and ratios in the same run.

    python -m bench.serving_grpc            # full run (about 12 minutes)
    python -m bench.serving_grpc --quick    # smoke run (about 3 minutes)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import serving_args
from bench.serving import ROOT, environment, median_measured
from bench.serving_models import BenchModel, request_body, small_cnn, tabular_mlp
from bench.serving_peers import PeerPythons, peer_python
from bench.serving_servers import ServerSpec, cpu_per_call, cpu_seconds, running_servers
from kubeloop_serving.oip_grpc import grpc_predict_v2_pb2 as pb
from tests.fixtures.ports import free_port

SERVERS = ("kubeloop", "kserve", "floor")
PROTOCOLS = ("rest", "grpc")


@dataclass(frozen=True)
class GrpcServer:
    spec: ServerSpec
    grpc_port: int


def grpc_request(model: BenchModel, seed: int = 0) -> bytes:
    """The same row as request_body's, as a serialized ModelInferRequest with raw contents."""
    count = int(np.prod(model.request_shape))
    values = np.random.default_rng(seed).standard_normal(count).astype(np.float32).round(6)
    request = pb.ModelInferRequest(model_name=model.name, raw_input_contents=[values.astype("<f4").tobytes()])
    request.inputs.add(name=model.input_name, datatype="FP32", shape=list(model.request_shape))
    body: bytes = request.SerializeToString()
    return body


def servers(model: BenchModel, threads: int, peer_python: Path, wanted: list[str]) -> list[GrpcServer]:
    kubeloop_port, kserve_port, floor_port = free_port(), free_port(), free_port()
    kubeloop_env = {
        "KUBELOOP_SERVING_MODEL_URI": str(model.path),
        "KUBELOOP_SERVING_MODEL_NAME": model.name,
        "KUBELOOP_SERVING_INTRA_OP_THREADS": str(threads),
        "KUBELOOP_SERVING_LOG_LEVEL": "warning",
        "KUBELOOP_SERVING_GRPC_PORT": str(kubeloop_port),
    }
    kserve = [str(peer_python), "-m", "bench.serving_grpc_kserve", str(model.path), model.name, "PORT"]
    # the peer's venv is not ours: no bytecode written into it
    kserve_env = {"PYTHONPATH": str(ROOT / "serving"), "PYTHONDONTWRITEBYTECODE": "1"}
    every = [
        GrpcServer(
            ServerSpec("kubeloop", [sys.executable, "-m", "kubeloop_serving"], kubeloop_env, "PORT_ENV"),
            kubeloop_port,
        ),
        GrpcServer(
            ServerSpec("kserve", [*kserve, str(threads), str(kserve_port)], kserve_env, "PORT_ARG"),
            kserve_port,
        ),
        GrpcServer(
            ServerSpec(
                "floor",
                [sys.executable, "-m", "bench.serving_floors", "grpc", "PORT", str(floor_port)],
                {},
                "PORT_ARG",
            ),
            floor_port,
        ),
    ]
    return [server for server in every if server.spec.label in wanted]


def load(command: list[str], cpus: str) -> dict[str, Any]:
    done = subprocess.run(
        ["taskset", "-c", cpus, *command], cwd=ROOT, capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def measure_model(
    model: BenchModel, args: argparse.Namespace, peer_python: Path, scratch: Path
) -> list[dict[str, Any]]:
    """Every server x protocol x concurrency for one model, interleaved over rounds."""
    rest_body, grpc_body = scratch / f"{model.name}.json", scratch / f"{model.name}.pb"
    rest_body.write_bytes(request_body(model))
    grpc_body.write_bytes(grpc_request(model))
    started = servers(model, args.threads, peer_python, args.servers)
    runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    timing = ["--warmup", str(args.warmup), "--duration", str(args.duration)]
    pids: dict[str, int] = {}
    with running_servers([s.spec for s in started], args.server_cpus, ROOT, scratch, pids) as urls:
        points = [(server, protocol) for server in started for protocol in args.protocols]
        for round_number in range(args.rounds):
            rotation = round_number % len(points)
            for concurrency in args.concurrency:
                for server, protocol in points[rotation:] + points[:rotation]:
                    per_point = ["--concurrency", str(concurrency), *timing]
                    if protocol == "rest":
                        url = f"{urls[server.spec.label]}/v2/models/{model.name}/infer"
                        command = [sys.executable, "-m", "bench.serving_loadgen", url, str(rest_body)]
                    else:
                        target = f"127.0.0.1:{server.grpc_port}"
                        command = [sys.executable, "-m", "bench.serving_grpc_loadgen", target, str(grpc_body)]
                    cpu_before = cpu_seconds(pids[server.spec.label])
                    run = load([*command, *per_point], args.loadgen_cpus)
                    cpu = cpu_seconds(pids[server.spec.label]) - cpu_before
                    run["cpu_us_per_request"] = cpu_per_call(cpu, run["requests"], args.warmup, args.duration)
                    runs.setdefault((server.spec.label, protocol, concurrency), []).append(run)
                    print(
                        f"{model.name} {server.spec.label} {protocol} c={concurrency}: {run}", file=sys.stderr
                    )
    return [
        {
            "model": model.name,
            "server": label,
            "protocol": protocol,
            "concurrency": concurrency,
            **summarise(measured),
            "cpu_us_per_request": median_measured([run["cpu_us_per_request"] for run in measured]),
        }
        for (label, protocol, concurrency), measured in runs.items()
    ]


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over rounds of each figure; answers other than 200 (REST) or OK (gRPC) summed."""
    failed = sum(
        count for run in runs for code, count in run["statuses"].items() if code not in ("200", "OK")
    )
    return {
        "rps": round(statistics.median(run["rps"] for run in runs), 1),
        "p50_ms": round(statistics.median(run["p50_ms"] for run in runs), 3),
        "p99_ms": round(statistics.median(run["p99_ms"] for run in runs), 3),
        "rounds": len(runs),
        "requests": sum(run["requests"] for run in runs),
        "failed": failed,
    }


#: ratio name -> (subject server, subject protocol, peer server, peer protocol)
COMPARISONS: dict[str, tuple[str, str, str, str]] = {
    "kubeloop_grpc_over_kubeloop_rest": ("kubeloop", "grpc", "kubeloop", "rest"),
    "kubeloop_grpc_over_kserve_grpc": ("kubeloop", "grpc", "kserve", "grpc"),
    "kserve_grpc_over_kserve_rest": ("kserve", "grpc", "kserve", "rest"),
    "kubeloop_grpc_over_floor_grpc": ("kubeloop", "grpc", "floor", "grpc"),
    "floor_grpc_over_floor_rest": ("floor", "grpc", "floor", "rest"),
}


def ratios(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each of COMPARISONS per model x concurrency: rps (higher is better), p50/p99 and CPU per call
    (lower is better), subject over peer; a comparison whose points were not measured is empty."""
    by_key = {(r["model"], r["server"], r["protocol"], r["concurrency"]): r for r in results}
    out: dict[str, list[dict[str, Any]]] = {}
    for label, (server, protocol, peer_server, peer_protocol) in COMPARISONS.items():
        rows = []
        for (model, subject_server, subject_protocol, concurrency), subject in by_key.items():
            peer = by_key.get((model, peer_server, peer_protocol, concurrency))
            if (subject_server, subject_protocol) != (server, protocol) or peer is None or not peer["rps"]:
                continue
            rows.append(
                {
                    "model": model,
                    "concurrency": concurrency,
                    "rps_ratio": round(subject["rps"] / peer["rps"], 2),
                    "p50_ratio": round(subject["p50_ms"] / peer["p50_ms"], 2),
                    "p99_ratio": round(subject["p99_ms"] / peer["p99_ms"], 2),
                    "cpu_per_request_ratio": round(
                        subject["cpu_us_per_request"] / peer["cpu_us_per_request"], 2
                    ),
                }
            )
        out[label] = rows
    return out


def arguments() -> argparse.Namespace:
    parser = serving_args.parser("kubeloop gRPC vs REST vs KServe gRPC (prints JSON)")
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS)
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per server")
    parser.add_argument("--kserve-python", type=Path, help="the peer's interpreter (default: .venv-kserve)")
    return serving_args.parse(parser)


def main() -> None:
    args = arguments()
    kserve = args.kserve_python or (
        peer_python("kserve") if "kserve" in args.servers else Path(sys.executable)
    )
    builders: dict[str, Callable[[Path], BenchModel]] = {"mlp": tabular_mlp, "cnn": small_cnn}
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kubeloop-bench-grpc-") as scratch:
        for name in args.models:
            results += measure_model(builders[name](Path(scratch)), args, kserve, Path(scratch))
    report = {
        "environment": {
            **environment(args, PeerPythons(kserve=kserve, mlserver=Path(sys.executable))),
            "payload": "one row per request: OIP JSON (REST), ModelInferRequest raw_input_contents (gRPC)",
            "kubeloop_batching": "the defaults: MAX_BATCH_SIZE 32, MAX_BATCH_RUN_MS 10",
        },
        "results": results,
        "ratios": ratios(results),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
