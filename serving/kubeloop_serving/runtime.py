"""onnxruntime session tuning for serving: threads from the CPU limit, no spinning, best provider."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

CGROUP = Path("/sys/fs/cgroup")
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


def cpu_limit_from_cpu_max(cpu_max: str) -> int | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` line (``"200000 100000"`` -> 2), None when unlimited."""
    fields = cpu_max.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpu_limit_from_cfs(quota_us: str, period_us: str) -> int | None:
    """CPUs allowed by cgroup v1's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, None when unlimited (-1)."""
    return cpu_limit_from_cpu_max(f"{'max' if quota_us.strip() == '-1' else quota_us} {period_us}")


def cgroup_cpu_limit(cgroup: Path = CGROUP) -> int | None:
    """The container's CPU limit from its cgroup: v2's ``cpu.max``, else v1's CFS quota and period (nodes
    on cgroup v1 still run: a 500m pod there would otherwise get a thread per node CPU)."""
    try:
        return cpu_limit_from_cpu_max((cgroup / "cpu.max").read_text())
    except OSError:
        pass
    for controller in ("cpu", "cpu,cpuacct"):
        try:
            quota = (cgroup / controller / "cpu.cfs_quota_us").read_text()
            period = (cgroup / controller / "cpu.cfs_period_us").read_text()
        except OSError:
            continue
        return cpu_limit_from_cfs(quota, period)
    return None


def container_cpu_limit(cgroup: Path = CGROUP) -> int:
    """The container's CPU limit, capped by the CPUs we may run on."""
    cpus = available_cpus()
    limit = cgroup_cpu_limit(cgroup)
    return cpus if limit is None else min(limit, cpus)


def intra_op_threads(configured: int, cpu_limit: int) -> int:
    """Threads for one onnxruntime session: the configured count, or the CPU limit when 0."""
    return configured if configured > 0 else max(1, cpu_limit)


def choose_providers(available: Sequence[str]) -> list[str]:
    """CUDA first when onnxruntime offers it, always CPU as the fallback for unsupported ops."""
    return [CUDA_PROVIDER, CPU_PROVIDER] if CUDA_PROVIDER in available else [CPU_PROVIDER]


def serving_session_options(threads: int) -> ort.SessionOptions:
    """Options for a session shared by all requests: fixed threads, no spinning, full optimisation."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def create_session(model_path: str, threads: int) -> ort.InferenceSession:
    """One onnxruntime session for the model, on the best available provider."""
    return ort.InferenceSession(
        model_path,
        sess_options=serving_session_options(threads),
        providers=choose_providers(ort.get_available_providers()),
    )
