"""Start the benchmarked servers pinned to the same CPUs, wait until ready, stop them after."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.ports import free_port


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server; ``port_via`` says where its port goes (env or argv "PORT")."""

    label: str
    command: list[str]
    env: dict[str, str]
    port_via: str

    def argv(self, port: int) -> list[str]:
        return [str(port) if part == "PORT" else part for part in self.command]

    def environment(self, port: int) -> dict[str, str]:
        if self.port_via != "PORT_ENV":
            return {**os.environ, **self.env}
        extra = {"KUBELOOP_SERVING_PORT": str(port), "KUBELOOP_SERVING_HOST": "127.0.0.1"}
        return {**os.environ, "KUBELOOP_SERVING_GRPC_PORT": "0", **self.env, **extra}  # gRPC: when asked


def is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (granian's worker is a child of its supervisor, the
    native data plane a child of kubeloop's server)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(p) for p in children.read_text().split()] if children.exists() else []
    return cpu_seconds(pid) + sum(tree_cpu_seconds(kid) for kid in kids)


def cpu_per_call(cpu_s: float, requests: int, warmup_s: float, duration_s: float) -> float:
    """A server's CPU µs per answered request over one load run of ``requests`` measured requests:
    it also worked through the warm-up, assumed at the same rate; NaN when none was answered."""
    served = requests * (warmup_s + duration_s) / duration_s
    return round(cpu_s / served * 1e6, 1) if served else math.nan


@contextlib.contextmanager
def running_servers(
    specs: Sequence[ServerSpec], cpus: str, cwd: Path, log_dir: Path, pids: dict[str, int] | None = None
) -> Iterator[dict[str, str]]:
    """Every server pinned with ``taskset -c cpus``; yields label -> base URL once all are ready.

    Each server's output goes to ``log_dir/{label}.log``; ``pids``, if given, gets label -> pid
    (taskset execs the server, so it is the server's own).
    """
    processes: list[subprocess.Popen[bytes]] = []
    urls: dict[str, str] = {}
    try:
        for spec in specs:
            port = free_port()
            command = ["taskset", "-c", cpus, *spec.argv(port)]
            with (log_dir / f"{spec.label}.log").open("wb") as log:
                process = subprocess.Popen(
                    command, cwd=cwd, env=spec.environment(port), stdout=log, stderr=subprocess.STDOUT
                )
            processes.append(process)
            urls[spec.label] = f"http://127.0.0.1:{port}"
            if pids is not None:
                pids[spec.label] = process.pid
        deadline = time.monotonic() + 180
        for spec, process in zip(specs, processes, strict=True):
            while not is_ready(urls[spec.label]):
                if process.poll() is not None or time.monotonic() > deadline:
                    log_text = (log_dir / f"{spec.label}.log").read_text()[-2000:]
                    raise RuntimeError(
                        f"{spec.label} did not become ready (exit {process.poll()}):\n{log_text}"
                    )
                time.sleep(0.2)
        yield urls
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
