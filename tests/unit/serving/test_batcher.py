from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from kubeloop_serving.batch_size import RUNS_TO_FIT
from kubeloop_serving.batcher import AdaptiveBatcher, merge_inputs, merge_key, run_batch, split_outputs
from kubeloop_serving.datatypes import Tensors
from kubeloop_serving.errors import InvalidRequestError, ModelNotReadyError
from kubeloop_serving.model import OnnxModel, onnxruntime_runner
from tests.unit.serving.conftest import GATHER_TABLE

pytestmark = pytest.mark.unit


def member(x: list[list[float]], idx: list[int]) -> Tensors:
    return {"x": np.array(x, np.float32), "idx": np.array(idx, np.int64)}


def test_merge_keys_group_compatible_requests() -> None:
    a = member([[1, 2, 3, 4]], [1])
    b = member([[5, 6, 7, 8], [0, 0, 0, 0]], [2, 3])
    assert merge_key(a) == merge_key(b)
    assert merge_key(a) != merge_key({"x": np.zeros((1, 5), np.float32), "idx": np.zeros(1, np.int64)})
    assert merge_key(a) != merge_key({"x": np.zeros((1, 4), np.float64), "idx": np.zeros(1, np.int64)})
    uneven: Tensors = {"x": np.zeros((2, 4), np.float32), "idx": np.zeros(3, np.int64)}
    assert merge_key(uneven) != merge_key(dict(uneven))


def test_merge_then_split_round_trips() -> None:
    members = [member([[1, 2, 3, 4]], [1]), member([[5, 6, 7, 8], [9, 9, 9, 9]], [2, 3])]
    merged = merge_inputs(members)
    assert merged["x"].shape == (3, 4)
    pieces = split_outputs({"y": merged["x"] * 2}, [1, 2])
    np.testing.assert_array_equal(pieces[0]["y"], members[0]["x"] * 2)
    np.testing.assert_array_equal(pieces[1]["y"], members[1]["x"] * 2)
    with pytest.raises(ValueError, match="batch dimension"):
        split_outputs({"total": np.array(1.0)}, [1, 2])


@pytest.fixture(scope="module")
def gather_runner(slow_gather_path: Path) -> object:
    return onnxruntime_runner(OnnxModel.load(str(slow_gather_path), threads=1))


def test_a_failing_member_fails_alone(gather_runner: object) -> None:
    observed: list[int] = []
    good, bad, other = member([[1, 1, 1, 1]], [0]), member([[0, 0, 0, 0]], [99]), member([[2, 2, 2, 2]], [9])
    outcomes = run_batch(gather_runner, [good, bad, other], [1, 1, 1], observed.append)  # type: ignore[arg-type]
    assert isinstance(outcomes[1], InvalidRequestError)
    assert not isinstance(outcomes[0], BaseException)
    assert not isinstance(outcomes[2], BaseException)
    np.testing.assert_array_equal(outcomes[0]["y"], GATHER_TABLE[[0]] + 1)
    np.testing.assert_array_equal(outcomes[2]["y"], GATHER_TABLE[[9]] + 2)
    assert observed == [3, 1, 1, 1]  # the merged call failed, then each ran alone


def test_merged_members_run_in_one_call(gather_runner: object) -> None:
    observed: list[int] = []
    members = [member([[1, 1, 1, 1]], [0]), member([[2, 2, 2, 2], [3, 3, 3, 3]], [1, 2])]
    outcomes = run_batch(gather_runner, members, [1, 2], observed.append)  # type: ignore[arg-type]
    assert observed == [3]
    assert not isinstance(outcomes[1], BaseException)
    np.testing.assert_array_equal(outcomes[1]["y"], GATHER_TABLE[[1, 2]] + np.array([[2], [3]]))


def test_batcher_merges_what_is_queued_and_refuses_after_close(gather_runner: object) -> None:
    observed: list[int] = []

    async def scenario() -> list[Tensors]:
        batcher = AdaptiveBatcher(gather_runner, max_batch_size=4, max_wait_s=0.0, observe=observed.append)  # type: ignore[arg-type]
        batcher.start()
        requests = [member([[i, i, i, i]], [i]) for i in range(6)]
        results = await asyncio.gather(*(batcher.infer(r, 1) for r in requests))
        await batcher.close()
        with pytest.raises(ModelNotReadyError):
            await batcher.infer(requests[0], 1)
        return results

    results = asyncio.run(scenario())
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], GATHER_TABLE[[i]] + i)
    # All six were queued before the worker ran: one batch of the maximum (4), then the other 2.
    assert observed == [4, 2]


def test_a_single_input_keys_by_name_trailing_dimensions_and_dtype() -> None:
    assert merge_key({"x": np.zeros((3, 4), np.float32)}) == (("x", (4,), "<f4"),)
    assert merge_key({"x": np.zeros((1, 4), np.float32)}) == merge_key({"x": np.ones((7, 4), np.float32)})
    assert merge_key({"x": np.zeros((1, 4), np.float32)}) != merge_key({"x": np.zeros((1, 5), np.float32)})
    assert merge_key({"x": np.zeros((1, 4), np.float32)}) != merge_key({"x": np.zeros((1, 4), np.int64)})
    assert merge_key({"x": np.zeros((1, 4), np.float32)}) != merge_key({"y": np.zeros((1, 4), np.float32)})
    assert merge_key({"x": np.zeros((), np.float32)}) == (("x", (), "<f4"),)


def test_a_batch_stops_at_the_rows_expected_to_run_within_its_budget(gather_runner: object) -> None:
    observed: list[int] = []

    async def scenario() -> list[Tensors]:
        batcher = AdaptiveBatcher(
            gather_runner,  # type: ignore[arg-type]
            max_batch_size=8,
            max_wait_s=0.0,
            observe=observed.append,
            max_run_s=2.5,
        )
        # earlier runs took a second a row; this model's real runs (milliseconds) add a size to the
        # fit only after their third, so 2 rows fit the 2.5 s budget throughout
        for _ in range(RUNS_TO_FIT):
            batcher.sizer.observe(1, 1.0)
            batcher.sizer.observe(4, 4.0)
        assert batcher.sizer.limit == 2
        batcher.start()
        requests = [member([[i, i, i, i]], [i]) for i in range(6)]
        results = await asyncio.gather(*(batcher.infer(r, 1) for r in requests))
        await batcher.close()
        return results

    results = asyncio.run(scenario())
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], GATHER_TABLE[[i]] + i)
    assert observed == [2, 2, 2]  # all six were queued at once; without the budget: [6]
