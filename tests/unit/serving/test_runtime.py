from __future__ import annotations

from pathlib import Path

import pytest

from kubeloop_serving.runtime import (
    available_cpus,
    cgroup_cpu_limit,
    choose_providers,
    container_cpu_limit,
    cpu_limit_from_cfs,
    cpu_limit_from_cpu_max,
    intra_op_threads,
    serving_session_options,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("cpu_max", "limit"),
    [
        ("max 100000", None),
        ("200000 100000", 2),
        ("150000 100000", 2),
        ("50000 100000", 1),
        ("garbage", None),
    ],
)
def test_cpu_limit_from_cgroup_v2(cpu_max: str, limit: int | None) -> None:
    assert cpu_limit_from_cpu_max(cpu_max) == limit


def test_container_limit_reads_cpu_max_and_falls_back(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert container_cpu_limit(tmp_path) == 1
    assert container_cpu_limit(tmp_path / "missing") == available_cpus()


@pytest.mark.parametrize("controller", ["cpu", "cpu,cpuacct"])
def test_container_limit_reads_cgroup_v1_cfs_quota(tmp_path: Path, controller: str) -> None:
    # what a container sees on a cgroup v1 node (this project's real node is one): its own cpu cgroup
    directory = tmp_path / controller
    directory.mkdir()
    (directory / "cpu.cfs_period_us").write_text("100000\n")
    (directory / "cpu.cfs_quota_us").write_text("50000\n")  # resources.limits.cpu: 500m
    assert cgroup_cpu_limit(tmp_path) == 1 and container_cpu_limit(tmp_path) == 1
    (directory / "cpu.cfs_quota_us").write_text("-1\n")  # no limit
    assert cgroup_cpu_limit(tmp_path) is None and container_cpu_limit(tmp_path) == available_cpus()


def test_cgroup_v2_is_read_first(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("400000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "cpu.max").write_text("200000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 2


@pytest.mark.parametrize(
    ("quota", "period", "limit"),
    [("-1", "100000", None), ("250000", "100000", 3), ("1000", "100000", 1), ("x", "100000", None)],
)
def test_cpu_limit_from_cgroup_v1(quota: str, period: str, limit: int | None) -> None:
    assert cpu_limit_from_cfs(quota, period) == limit


def test_intra_op_threads_default_to_the_cpu_limit() -> None:
    assert intra_op_threads(0, cpu_limit=3) == 3
    assert intra_op_threads(5, cpu_limit=3) == 5


def test_cuda_is_preferred_when_available() -> None:
    assert choose_providers(["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert choose_providers(["AzureExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_session_options_are_tuned_for_serving() -> None:
    options = serving_session_options(threads=2)
    assert options.intra_op_num_threads == 2
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.graph_optimization_level.name == "ORT_ENABLE_ALL"
