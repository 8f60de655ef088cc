from __future__ import annotations

from pathlib import Path

import pytest

from kubeloop_serving.runtime import (
    choose_providers,
    container_cpu_limit,
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
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("100000 100000\n")
    assert container_cpu_limit(cpu_max) == 1
    assert container_cpu_limit(tmp_path / "missing") >= 1


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
