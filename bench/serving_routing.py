"""The cost of the canary split: requests served by the canary through the stable server's router
(weight 100) against the same requests sent to the canary directly, side by side, over REST and over
gRPC (ModelInfer, raw contents, forwarded to the canary's gRPC port); and the caller's latency at the
stable server with and without a shadow that takes 1 s per request (every request mirrored, a bounded
queue: the copies that do not fit are dropped and counted, never waited for).

Same model (the tabular MLP of bench.serving), same two servers pinned to the same CPUs, same
closed-loop load generator in its own process on other CPUs (bench.serving_loadgen, keep-alive; for
gRPC bench.serving_grpc_loadgen, one HTTP/2 channel), interleaved rounds. Prints JSON: rps, p50_ms,
p99_ms per path x concurrency, routed/direct (REST and gRPC) and with-shadow/without ratios.

    python -m bench.serving_routing            # about 3 minutes
    python -m bench.serving_routing --quick    # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import serving_args, serving_grpc
from bench.serving import load
from bench.serving_grpc import grpc_request
from bench.serving_models import request_body, tabular_mlp
from bench.serving_servers import ServerSpec, running_servers
from kubeloop.contracts.routing import Canary, Routes, Shadow
from tests.fixtures.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
PATHS = ("direct", "routed", "no_shadow", "with_shadow", "grpc_direct", "grpc_routed")


def metric(url: str, name: str) -> float:
    """The sum of every sample of ``name`` at ``url``/metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def publish(routes_file: Path, routes: Routes) -> None:
    staged = routes_file.with_suffix(".tmp")
    staged.write_text(routes.to_json())
    os.replace(staged, routes_file)


def arguments() -> argparse.Namespace:
    parser = serving_args.parser("canary through the split vs direct (prints JSON)", concurrency=(1, 8, 32))
    args = serving_args.parse(parser)
    if args.quick:
        args.concurrency = [1, 8]
    return args


def main() -> None:
    args = arguments()
    threads = str(serving_args.server_cpu_count(args))
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="kubeloop-bench-routing-") as scratch_name:
        scratch = Path(scratch_name)
        model = tabular_mlp(scratch)
        body_file, grpc_file = scratch / "body.json", scratch / "request.pb"
        body_file.write_bytes(request_body(model))
        grpc_file.write_bytes(grpc_request(model))
        routes_file = scratch / "routes.json"
        canary_grpc, stable_grpc = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        common = {
            "KUBELOOP_SERVING_MODEL_URI": str(model.path),
            "KUBELOOP_SERVING_MODEL_NAME": model.name,
            "KUBELOOP_SERVING_INTRA_OP_THREADS": threads,
            "KUBELOOP_SERVING_MAX_BATCH_SIZE": "1",
            "KUBELOOP_SERVING_LOG_LEVEL": "warning",
        }
        server = [sys.executable, "-m", "kubeloop_serving"]
        specs = [
            ServerSpec(
                "canary",
                server,
                {
                    **common,
                    "KUBELOOP_SERVING_TRACK": "canary",
                    "KUBELOOP_SERVING_GRPC_PORT": port(canary_grpc),
                },
                "PORT_ENV",
            ),
            ServerSpec(
                "stable",
                server,
                {
                    **common,
                    "KUBELOOP_SERVING_ROUTES_FILE": str(routes_file),
                    "KUBELOOP_SERVING_ROUTES_POLL_SECONDS": "0.2",
                    "KUBELOOP_SERVING_GRPC_PORT": port(stable_grpc),
                },
                "PORT_ENV",
            ),
        ]
        sleepy = [sys.executable, "-m", "uvicorn", "bench.serving_sleepy:app", "--port", "PORT"]
        specs.append(ServerSpec("shadow", [*sleepy, "--log-level", "warning"], {}, "argv"))
        with running_servers(specs, args.server_cpus, ROOT, scratch) as urls:
            canary = Routes(canary=Canary(url=urls["canary"], weight_percent=100, grpc_target=canary_grpc))
            tables = {
                "direct": canary,
                "routed": canary,
                "no_shadow": Routes(),
                "with_shadow": Routes(shadow=Shadow(url=urls["shadow"], percent=100, queue_size=1000)),
                "grpc_direct": canary,
                "grpc_routed": canary,
            }
            targets = {"direct": urls["canary"], "routed": urls["stable"]}
            grpc_targets = {"grpc_direct": canary_grpc, "grpc_routed": stable_grpc}
            generation = 0
            for round_number in range(args.rounds):
                for concurrency in args.concurrency:
                    order = PATHS if round_number % 2 == 0 else PATHS[::-1]
                    for path in order:
                        generation += 1
                        routes = tables[path].model_copy(update={"generation": generation})
                        publish(routes_file, routes)
                        while metric(urls["stable"], "kubeloop_serving_routes_generation") != generation:
                            time.sleep(0.05)
                        if path in grpc_targets:
                            timing = ["--warmup", str(args.warmup), "--duration", str(args.duration)]
                            command = [
                                sys.executable, "-m", "bench.serving_grpc_loadgen", grpc_targets[path],
                                str(grpc_file), "--concurrency", str(concurrency), *timing,
                            ]  # fmt: skip
                            run = serving_grpc.load(command, args.loadgen_cpus)
                        else:
                            url = f"{targets.get(path, urls['stable'])}/v2/models/{model.name}/infer"
                            run = load(
                                url,
                                body_file,
                                concurrency=concurrency,
                                cpus=args.loadgen_cpus,
                                warmup=args.warmup,
                                duration=args.duration,
                            )
                        runs.setdefault((path, concurrency), []).append(run)
                        print(f"{path} c={concurrency}: {run}", file=sys.stderr)
            computed_by_stable = metric(urls["stable"], "kubeloop_serving_requests_total")
            fallbacks = metric(urls["stable"], "kubeloop_serving_route_fallbacks_total")
            shadow = {
                "copies_sent": metric(urls["stable"], "kubeloop_serving_shadow_requests_total"),
                "copies_dropped": metric(urls["stable"], "kubeloop_serving_shadow_dropped_total"),
            }
    results = [{"path": p, "concurrency": c, **summarise(measured)} for (p, c), measured in runs.items()]
    print(json.dumps(report(args, results, computed_by_stable, fallbacks, shadow), indent=2))


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over rounds of each figure; answers other than 200 (REST) or OK (gRPC), and connection
    errors, summed (the servers' CPU is not measured here: both share the same CPUs)."""
    summary = serving_grpc.summarise(runs)
    summary["failed"] += sum(run.get("errors", 0) for run in runs)
    return summary


def port(target: str) -> str:
    return target.rsplit(":", 1)[1]


def ratio(by_key: dict[tuple[str, int], dict[str, Any]], over: tuple[str, str], c: int, key: str) -> float:
    return round(float(by_key[(over[0], c)][key]) / float(by_key[(over[1], c)][key]), 2)


def report(
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    computed: float,
    fallbacks: float,
    shadow: dict[str, float],
) -> dict[str, Any]:
    by_key = {(r["path"], r["concurrency"]): r for r in results}
    shadowed = ("with_shadow", "no_shadow")
    shadow_ratios = [
        {
            "concurrency": c,
            "p50_ratio": ratio(by_key, shadowed, c, "p50_ms"),
            "p99_ratio": ratio(by_key, shadowed, c, "p99_ms"),
            "rps_ratio": ratio(by_key, shadowed, c, "rps"),
        }
        for c in args.concurrency
    ]

    def routed_over_direct(routed: str, direct: str) -> list[dict[str, Any]]:
        return [
            {
                "concurrency": c,
                "p50_ratio": ratio(by_key, (routed, direct), c, "p50_ms"),
                "p99_ratio": ratio(by_key, (routed, direct), c, "p99_ms"),
                "rps_ratio": ratio(by_key, (routed, direct), c, "rps"),
                "added_p50_ms": round(by_key[(routed, c)]["p50_ms"] - by_key[(direct, c)]["p50_ms"], 3),
            }
            for c in args.concurrency
        ]

    return {
        "peer": "the same canary server called directly (no router hop); for the shadow, the same "
        "stable server without a shadow",
        "environment": {
            "cpus_visible": len(os.sched_getaffinity(0)),
            "server_cpus": args.server_cpus,
            "loadgen_cpus": args.loadgen_cpus,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "payload": "one row of 64 floats, tabular MLP: OIP v2 JSON; gRPC raw contents",
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "results": results,
        "ratios_routed_over_direct": routed_over_direct("routed", "direct"),
        "ratios_grpc_routed_over_direct": routed_over_direct("grpc_routed", "grpc_direct"),
        "ratios_with_over_without_a_1s_shadow": shadow_ratios,
        "shadow": shadow,
        "requests_computed_by_stable": computed,
        "fallbacks": fallbacks,
    }


if __name__ == "__main__":
    main()
