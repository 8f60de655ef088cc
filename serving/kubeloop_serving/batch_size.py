"""How many rows a merged batch may take: as many as run within a time budget, learned from recent
runs, unless the run's fixed cost needs more rows for the throughput batching is there for.

A request that just misses a batch waits for all of it to run. With batches of 32 rows of a model
that takes about a millisecond a row on one core (the benchmark's CNN), that request falls ~30 ms
behind the others: the tail of the latency distribution is one batch's run. Batches that run for at
most ``budget_s`` keep that wait short without costing throughput when rows cost the same alone or
merged. Where merging does save (a call's fixed cost, a GPU's in particular) the limit never goes
below the rows at which that fixed cost is a tenth of the run, whatever the budget says.

A run's duration is the calling thread's CPU time where onnxruntime runs on that thread alone (the
CPU, one intra-op thread): what more rows cost, without the stalls of a CPU-limited pod whose CFS
quota is spent, which come whatever the batch size (timed on the wall clock, a 500m pod's ramp-up
runs of 16-32 rows carried them and held its limit at 1 row). With more intra-op threads or a GPU it
is the wall-clock time: that thread's CPU time misses the other threads' and the device's work and
reads it as fixed cost, which the throughput floor multiplies by nine (a 500m pod given two threads
ended runs at limits of 4, 10, 14 and 26 rows where 2-3 fit). Runs are fitted as ``seconds = fixed +
per_row * rows`` by least squares over the batch sizes seen, each size standing for the median of
its last ``RUNS_KEPT`` runs and weighing as many runs as it kept: run times have a heavy tail (a
page fault, a busy node), and a median ignores it. A size enters the fit only after ``RUNS_TO_FIT``
runs. Until two sizes have that many runs nothing is known, and the limit is the configured maximum.

The fixed cost is the fit's intercept, but at most what the smallest fitted size's median shows
beyond its rows (``median - per_row * rows``): the intercept extrapolates, and mid sizes running above
the line lift it (0.29 to 1.03 ms in one run, a limit of 9 rows where 3 fit the budget), while the
smallest size is the run closest to a call with no rows.

Sizes over the limit stop running, so their runs stay in the fit: they keep its span of sizes wide,
which keeps the extrapolated fixed cost (and the floor, nine times it) steady. Forgetting them (tried:
sizes not run in the last 1,000 batches left the fit) left fits over a few neighbouring sizes whose
fixed cost was noise, and a 500m pod's limit moved from 3 rows to 12 and back.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from typing import Final

log = logging.getLogger(__name__)

#: Runs kept per batch size; the size's duration is their median.
RUNS_KEPT: Final = 15
#: Runs of a size before it counts in the fit (a median of three ignores one slow run).
RUNS_TO_FIT: Final = 3
#: At most one log line per this many seconds about the limit changing.
LOG_EVERY_S: Final = 1.0
#: Rows never stop short of this many times fixed / per_row (the fixed cost is then 1/10 of a run).
THROUGHPUT_ROWS: Final = 9.0


class BatchSizer:
    """The row limit of the next batch, from the durations of the batches run so far."""

    def __init__(self, max_rows: int, budget_s: float) -> None:
        self.max_rows = max_rows
        self.budget_s = budget_s
        self.limit = max_rows
        self._runs: dict[int, deque[float]] = {}  # batch size -> its last runs' durations
        self._logged_at, self._logged_limit = -math.inf, max_rows
        self._fitted: dict[int, tuple[int, float]] = {}  # batch size -> (weight, median) in the sums
        # weighted least-squares sums over the fitted sizes: weight, rows, rows^2, seconds, rows * seconds
        self._weight = self._rows = self._rows_squared = self._time = self._rows_time = 0.0

    def observe(self, rows: int, seconds: float) -> None:
        """Record one batch's run; a batch over the maximum (a single large request) is left out."""
        if self.budget_s <= 0 or not 1 <= rows <= self.max_rows:
            return
        runs = self._runs.get(rows)
        if runs is None:
            runs = self._runs[rows] = deque(maxlen=RUNS_KEPT)
        runs.append(seconds)
        if len(runs) >= RUNS_TO_FIT:
            ordered = sorted(runs)
            middle = len(ordered) // 2
            median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
            previous = self._fitted.get(rows)
            if previous is not None:
                self._add(rows, -previous[0], previous[1])
            self._fitted[rows] = (len(runs), median)
            self._add(rows, len(runs), median)
            self.limit = self._limit()
        if self.limit != self._logged_limit:  # at most once a second: a limit may move at every batch
            now = time.monotonic()
            if now - self._logged_at >= LOG_EVERY_S:
                log.info("batch limit %d -> %d rows (%s)", self._logged_limit, self.limit, self.describe())
                self._logged_at, self._logged_limit = now, self.limit

    def describe(self) -> str:
        """The fit and each fitted size's median run, for the log."""
        fitted = self.fit()
        line = (
            "nothing fitted"
            if fitted is None
            else f"{fitted[0] * 1e3:.3f} ms + {fitted[1] * 1e3:.3f} ms a row"
        )
        sizes = ", ".join(
            f"{size}: {seconds * 1e3:.2f} ms" for size, (_, seconds) in sorted(self._fitted.items())
        )
        return f"{line} over sizes {sizes or 'none'}"

    def _add(self, rows: int, weight: int, seconds: float) -> None:
        self._weight += weight
        self._rows += weight * rows
        self._rows_squared += weight * rows * rows
        self._time += weight * seconds
        self._rows_time += weight * rows * seconds

    def fit(self) -> tuple[float, float] | None:
        """(fixed seconds, seconds per row), or None before two sizes have been fitted."""
        spread = self._weight * self._rows_squared - self._rows * self._rows
        if len(self._fitted) < 2 or spread <= 0:
            return None
        per_row = (self._weight * self._rows_time - self._rows * self._time) / spread
        fixed = (self._time - per_row * self._rows) / self._weight
        return max(fixed, 0.0), per_row

    def _limit(self) -> int:
        fitted = self.fit()
        if fitted is None or fitted[1] <= 0:  # nothing known, or bigger batches cost nothing more
            return self.max_rows
        fixed, per_row = fitted
        # at most what the smallest size's runs show beyond their rows (the module's docstring says why)
        smallest = min(self._fitted)
        fixed = min(fixed, max(0.0, self._fitted[smallest][1] - per_row * smallest))
        rows = max((self.budget_s - fixed) / per_row, THROUGHPUT_ROWS * fixed / per_row)
        return max(1, min(self.max_rows, math.floor(rows + 1e-9)))  # 10 ms / 1 ms is 9.999...
