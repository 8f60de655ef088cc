"""Command-line options the serving benchmarks share (bench.serving, bench.serving_grpc,
bench.serving_routing): seconds per point, rounds, concurrency, and which CPUs the servers and the
load generators are pinned to."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence


def parser(description: str, concurrency: Sequence[int] = (1, 8, 64)) -> argparse.ArgumentParser:
    """A parser with the shared options; a benchmark adds its own before ``parse``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="one short round: a smoke test")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per point")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per point")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; medians reported")
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(concurrency))
    parser.add_argument("--server-cpus", default="0", help="taskset CPU list shared by every server")
    parser.add_argument(
        "--loadgen-cpus", default=None, help="taskset CPU list of the load generators (default: the others)"
    )
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options, with ``--quick`` applied and ``--loadgen-cpus`` defaulting to the CPUs that the
    servers are not pinned to (all of them on a one-CPU machine)."""
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.rounds = 2.0, 0.5, 1
    if args.loadgen_cpus is None:
        others = sorted(os.sched_getaffinity(0) - cpu_set(args.server_cpus))
        args.loadgen_cpus = ",".join(map(str, others or sorted(os.sched_getaffinity(0))))
    return args


def server_cpu_count(args: argparse.Namespace) -> int:
    """How many of this process's CPUs the servers are pinned to (at least 1)."""
    return max(1, len(os.sched_getaffinity(0) & cpu_set(args.server_cpus)))


def cpu_set(spec: str) -> set[int]:
    """The CPUs of a taskset list such as ``0``, ``0,2`` or ``0-3``."""
    cpus: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus
