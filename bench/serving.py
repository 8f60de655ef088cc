"""Serving benchmark: kubeloop (batching off and on) against KServe's model server, side by side.

Same generated ONNX models (a tabular MLP and a small CNN), same onnxruntime session options,
same pinned CPU and thread count for every server, same JSON payload, same closed-loop load
generator in its own process on other CPUs. Prints JSON: rps, p50_ms and p99_ms per model x
server x concurrency, and kubeloop/kserve ratios.

    python -m bench.serving            # full run (about 6 minutes)
    python -m bench.serving --quick    # smoke run (about a minute)

KServe (``kserve==0.21.0``) lives in its own virtualenv, ``.venv-kserve``, created on first
use, so its pins never touch ours.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.serving_models import BenchModel, request_body, small_cnn, tabular_mlp
from bench.serving_servers import ServerSpec, running_servers

ROOT = Path(__file__).resolve().parent.parent
KSERVE_VENV = ROOT / ".venv-kserve"
KSERVE_VERSION = "0.21.0"
SERVERS = ("kubeloop", "kubeloop_batching", "kserve")


def kserve_python() -> Path:
    """The peer's interpreter; creates .venv-kserve (kserve + our onnxruntime version) if missing."""
    import onnxruntime

    python = KSERVE_VENV / "bin" / "python"
    probe = [
        str(python),
        "-c",
        f"import kserve, onnxruntime; assert onnxruntime.__version__ == '{onnxruntime.__version__}'",
    ]
    if python.exists() and subprocess.run(probe, check=False, capture_output=True).returncode == 0:
        return python
    print(f"creating {KSERVE_VENV} with kserve=={KSERVE_VERSION} ...", file=sys.stderr)
    subprocess.run(["python3", "-m", "venv", str(KSERVE_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    packages = [f"kserve=={KSERVE_VERSION}", f"onnxruntime=={onnxruntime.__version__}", "numpy"]
    subprocess.run([*pip, *packages], check=True)
    return python


def server_specs(model: BenchModel, threads: int, peer_python: Path) -> list[ServerSpec]:
    """The three servers for one model, each told to use ``threads`` onnxruntime threads."""
    kubeloop_env = {
        "KUBELOOP_SERVING_MODEL_URI": str(model.path),
        "KUBELOOP_SERVING_MODEL_NAME": model.name,
        "KUBELOOP_SERVING_INTRA_OP_THREADS": str(threads),
        "KUBELOOP_SERVING_LOG_LEVEL": "warning",
    }
    kubeloop = [sys.executable, "-m", "kubeloop_serving"]
    return [
        ServerSpec(
            "kubeloop", kubeloop, {**kubeloop_env, "KUBELOOP_SERVING_MAX_BATCH_SIZE": "1"}, "PORT_ENV"
        ),
        ServerSpec(
            "kubeloop_batching",
            kubeloop,
            {**kubeloop_env, "KUBELOOP_SERVING_MAX_BATCH_SIZE": "32"},
            "PORT_ENV",
        ),
        ServerSpec(
            "kserve",
            [
                str(peer_python),
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
    """Median over rounds of each figure; errors and non-200 answers summed."""
    non_200 = sum(count for run in runs for code, count in run["statuses"].items() if code != "200")
    return {
        "rps": round(statistics.median(run["rps"] for run in runs), 1),
        "p50_ms": round(statistics.median(run["p50_ms"] for run in runs), 3),
        "p99_ms": round(statistics.median(run["p99_ms"] for run in runs), 3),
        "rounds": len(runs),
        "requests": sum(run["requests"] for run in runs),
        "non_200": non_200,
        "errors": sum(run["errors"] for run in runs),
    }


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """kubeloop/kserve per model x concurrency: rps (higher is better), p50 and p99 (lower is better)."""
    by_key = {(r["model"], r["server"], r["concurrency"]): r for r in results}
    rows = []
    for (model, server, concurrency), result in by_key.items():
        peer = by_key.get((model, "kserve", concurrency))
        if server == "kserve" or peer is None:
            continue
        rows.append(
            {
                "model": model,
                "server": server,
                "concurrency": concurrency,
                "rps_ratio": round(result["rps"] / peer["rps"], 2),
                "p50_ratio": round(result["p50_ms"] / peer["p50_ms"], 2),
                "p99_ratio": round(result["p99_ms"] / peer["p99_ms"], 2),
            }
        )
    return rows


def goals(ratio_rows: list[dict[str, Any]]) -> dict[str, bool]:
    """The issue's targets, per model, for the best kubeloop variant."""
    verdict = {}
    for model in sorted({row["model"] for row in ratio_rows}):
        at = {(row["server"], row["concurrency"]): row for row in ratio_rows if row["model"] == model}
        high = [row for (_, concurrency), row in at.items() if concurrency == max(c for _, c in at)]
        low = [row for (_, concurrency), row in at.items() if concurrency == min(c for _, c in at)]
        verdict[f"{model}: >=2x rps at top concurrency with p99 no worse"] = any(
            row["rps_ratio"] >= 2 and row["p99_ratio"] <= 1 for row in high
        )
        verdict[f"{model}: >=1x rps at concurrency {min(c for _, c in at)}"] = any(
            row["rps_ratio"] >= 1 for row in low
        )
    return verdict


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="kubeloop vs KServe serving benchmark (prints JSON)")
    parser.add_argument("--quick", action="store_true", help="one short round: a smoke test")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per point")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per point")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; medians reported")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS)
    parser.add_argument("--server-cpus", default="0", help="taskset CPU list shared by every server")
    parser.add_argument("--loadgen-cpus", default=None, help="taskset CPU list of the load generator")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads per server")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.rounds = 2.0, 0.5, 1
    server_cpu_count = len(os.sched_getaffinity(0) & _cpu_set(args.server_cpus))
    args.threads = args.threads or max(1, server_cpu_count)
    if args.loadgen_cpus is None:
        others = sorted(os.sched_getaffinity(0) - _cpu_set(args.server_cpus))
        args.loadgen_cpus = ",".join(map(str, others or sorted(os.sched_getaffinity(0))))
    return args


def _cpu_set(spec: str) -> set[int]:
    cpus: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def measure_model(
    model: BenchModel, args: argparse.Namespace, peer_python: Path, scratch: Path
) -> list[dict[str, Any]]:
    """Every server x concurrency for one model, interleaved over rounds; one summary per point."""
    body_file = scratch / f"{model.name}.json"
    body_file.write_bytes(request_body(model))
    specs = [spec for spec in server_specs(model, args.threads, peer_python) if spec.label in args.servers]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with running_servers(specs, args.server_cpus, ROOT, scratch) as urls:
        for round_number in range(args.rounds):
            rotation = round_number % len(specs)
            for concurrency in args.concurrency:
                for spec in specs[rotation:] + specs[:rotation]:
                    url = f"{urls[spec.label]}/v2/models/{model.name}/infer"
                    run = load(
                        url,
                        body_file,
                        concurrency=concurrency,
                        cpus=args.loadgen_cpus,
                        warmup=args.warmup,
                        duration=args.duration,
                    )
                    runs.setdefault((spec.label, concurrency), []).append(run)
                    print(f"{model.name} {spec.label} c={concurrency}: {run}", file=sys.stderr)
    return [
        {"model": model.name, "server": label, "concurrency": concurrency, **summarise(measured)}
        for (label, concurrency), measured in runs.items()
    ]


def main() -> None:
    args = arguments()
    peer_python = kserve_python() if "kserve" in args.servers else Path(sys.executable)
    builders: dict[str, Callable[[Path], BenchModel]] = {"mlp": tabular_mlp, "cnn": small_cnn}
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kubeloop-bench-") as scratch:
        for name in args.models:
            results += measure_model(builders[name](Path(scratch)), args, peer_python, Path(scratch))
    ratio_rows = ratios(results)
    report = {
        "environment": environment(args, peer_python),
        "results": results,
        "ratios_kubeloop_over_kserve": ratio_rows,
        "goals": goals(ratio_rows) if "kserve" in args.servers else {},
    }
    print(json.dumps(report, indent=2))


def environment(args: argparse.Namespace, peer_python: Path) -> dict[str, Any]:
    import onnxruntime

    peer_version = subprocess.run(
        [str(peer_python), "-c", "import importlib.metadata as m; print(m.version('kserve'))"],
        check=False,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "cpus_visible": len(os.sched_getaffinity(0)),
        "server_cpus": args.server_cpus,
        "loadgen_cpus": args.loadgen_cpus,
        "onnxruntime_threads_per_server": args.threads,
        "onnxruntime": onnxruntime.__version__,
        "kserve": peer_version or None,
        "python": sys.version.split()[0],
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "rounds": args.rounds,
        "payload": "OIP v2 JSON, one row per request, flat data",
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }


if __name__ == "__main__":
    main()
