"""How many rows a merged batch may take: as many as run within a time budget, learned from recent
runs, unless the run's fixed cost needs more rows for the throughput batching is there for.

A request that just misses a batch waits for all of it to run. With batches of 32 rows of a model
that takes about a millisecond a row on one core (the benchmark's CNN), that request falls ~30 ms
behind the others: the tail of the latency distribution is one batch's run. Batches that run for at
most ``budget_s`` keep that wait short without costing throughput when rows cost the same alone or
merged. Where merging does save (a call's fixed cost, a GPU's in particular) the limit never goes
below the rows at which that fixed cost is a tenth of the run, whatever the budget says.

Runs are fitted as ``seconds = fixed + per_row * rows`` by least squares over the running average
duration of each batch size seen, so many batches of one size weigh no more than one of another and
the sizes seen while the load grew keep informing the fit once batches settle at the limit. Until
two sizes have been seen nothing is known, and the limit is the configured maximum.
"""

from __future__ import annotations

import math
from typing import Final

#: Weight of the newest duration in a batch size's running average.
SMOOTHING: Final = 0.2
#: Rows never stop short of this many times fixed / per_row (the fixed cost is then 1/10 of a run).
THROUGHPUT_ROWS: Final = 9.0


class BatchSizer:
    """The row limit of the next batch, from the durations of the batches run so far."""

    def __init__(self, max_rows: int, budget_s: float) -> None:
        self.max_rows = max_rows
        self.budget_s = budget_s
        self.limit = max_rows
        self._seconds: dict[int, float] = {}  # batch size -> running average duration
        # least-squares sums over the sizes seen: count, rows, rows^2, seconds, rows * seconds
        self._count = self._rows = self._rows_squared = self._time = self._rows_time = 0.0

    def observe(self, rows: int, seconds: float) -> None:
        """Record one batch's run; a batch over the maximum (a single large request) is left out."""
        if self.budget_s <= 0 or not 1 <= rows <= self.max_rows:
            return
        previous = self._seconds.get(rows)
        if previous is None:
            current = seconds
            self._count += 1
            self._rows += rows
            self._rows_squared += rows * rows
            change = seconds
        else:
            current = previous + SMOOTHING * (seconds - previous)
            change = current - previous
        self._seconds[rows] = current
        self._time += change
        self._rows_time += rows * change
        self.limit = self._limit()

    def fit(self) -> tuple[float, float] | None:
        """(fixed seconds, seconds per row), or None before two sizes have been seen."""
        spread = self._count * self._rows_squared - self._rows * self._rows
        if self._count < 2 or spread <= 0:
            return None
        per_row = (self._count * self._rows_time - self._rows * self._time) / spread
        fixed = (self._time - per_row * self._rows) / self._count
        return max(fixed, 0.0), per_row

    def _limit(self) -> int:
        fitted = self.fit()
        if fitted is None or fitted[1] <= 0:  # nothing known, or bigger batches cost nothing more
            return self.max_rows
        fixed, per_row = fitted
        rows = max((self.budget_s - fixed) / per_row, THROUGHPUT_ROWS * fixed / per_row)
        return max(1, min(self.max_rows, math.floor(rows + 1e-9)))  # 10 ms / 1 ms is 9.999...
