from __future__ import annotations

import pytest

from kubeloop_serving.batch_size import BatchSizer

pytestmark = pytest.mark.unit

MS = 1e-3


def runs(sizer: BatchSizer, fixed_ms: float, per_row_ms: float, sizes: list[int]) -> BatchSizer:
    for rows in sizes:
        sizer.observe(rows, (fixed_ms + per_row_ms * rows) * MS)
    return sizer


def test_until_two_sizes_are_seen_the_limit_is_the_maximum() -> None:
    sizer = BatchSizer(max_rows=32, budget_s=10 * MS)
    assert sizer.limit == 32 and sizer.fit() is None
    runs(sizer, 0, 1.0, [32, 32, 32])
    assert sizer.limit == 32 and sizer.fit() is None


def test_rows_that_cost_the_same_alone_or_merged_stop_at_the_budget() -> None:
    # the bench's CNN on one core: ~1 ms a row, batch or not
    sizer = runs(BatchSizer(max_rows=32, budget_s=10 * MS), 0.05, 0.94, [1, 7, 32, 20])
    fixed, per_row = sizer.fit() or (0.0, 0.0)
    assert fixed == pytest.approx(0.05 * MS) and per_row == pytest.approx(0.94 * MS)
    assert sizer.limit == 10  # (10 - 0.05) / 0.94 = 10.6


def test_rows_that_cost_microseconds_fill_the_batch() -> None:
    # the bench's MLP: 13 us a call, a fraction of a microsecond a row
    sizer = runs(BatchSizer(max_rows=32, budget_s=10 * MS), 0.013, 0.0003, [1, 5, 32])
    assert sizer.limit == 32


def test_a_large_fixed_cost_keeps_batches_large_whatever_the_budget() -> None:
    # a GPU-like run: 20 ms per call, 1 ms a row: no batch fits 10 ms, and smaller ones would only
    # lose throughput; rows go to where the fixed cost is a tenth of the run (9 x 20 / 1 = 180)
    sizer = runs(BatchSizer(max_rows=256, budget_s=10 * MS), 20, 1.0, [1, 2, 64])
    assert sizer.limit == 180
    assert runs(BatchSizer(max_rows=32, budget_s=10 * MS), 20, 1.0, [1, 2, 64][:2]).limit == 32


def test_the_larger_of_budget_and_throughput_rows_wins() -> None:
    assert runs(BatchSizer(max_rows=64, budget_s=10 * MS), 0.5, 1.0, [1, 4]).limit == 9  # budget: 9.5
    assert runs(BatchSizer(max_rows=64, budget_s=10 * MS), 3.0, 0.5, [1, 4]).limit == 54  # throughput


def test_when_more_rows_cost_nothing_more_the_limit_is_the_maximum() -> None:
    sizer = BatchSizer(max_rows=32, budget_s=10 * MS)
    sizer.observe(1, 5 * MS)
    sizer.observe(16, 4 * MS)
    assert sizer.limit == 32


def test_a_zero_budget_turns_the_limit_off() -> None:
    assert runs(BatchSizer(max_rows=32, budget_s=0), 0, 1.0, [1, 8, 32]).limit == 32


def test_each_size_weighs_once_and_sizes_over_the_maximum_are_left_out() -> None:
    sizer = runs(BatchSizer(max_rows=32, budget_s=10 * MS), 0, 1.0, [1] + [8] * 100)
    assert sizer.fit() == pytest.approx((0.0, 1 * MS))
    sizer.observe(1000, 1 * MS)  # one large request, run alone: not a batch size
    assert sizer.fit() == pytest.approx((0.0, 1 * MS)) and sizer.limit == 10


def test_the_limit_follows_runs_that_get_slower() -> None:
    sizer = runs(BatchSizer(max_rows=32, budget_s=10 * MS), 0, 1.0, [1, 10])
    assert sizer.limit == 10
    runs(sizer, 0, 2.0, [1, 10] * 30)  # each size's average moves to the new durations
    assert sizer.limit == 5
