"""Where a model run happens: on the event loop when runs are short, else in the worker thread.

Handing a call to the worker thread and back costs 40-70 us of CPU (a queue put, a futex wake-up,
``call_soon_threadsafe`` through the loop's self-pipe, a future resolved on the loop): more than
a small model's whole run (13 us for the benchmark's MLP). Calls whose recent average took less
than ``inline_below_s`` are made on the event loop, which they block for about that long; longer
ones go to the thread, so the loop keeps reading, decoding and answering while onnxruntime runs
(on another core where the pod has one). Every call is timed where it runs, so a model whose runs
grow moves back to the thread. The first call, with nothing measured yet, goes to the thread.
Placement goes by the calling thread's CPU time, so a run preempted by other work on a busy node
does not count as a long one. ``timed`` gets the same CPU time when the run is all on the calling
thread (``cpu_timed``: onnxruntime on the CPU with one intra-op thread), else the wall-clock time,
which counts onnxruntime's other intra-op threads and a GPU; that CPU time would miss them.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Final, TypeVar

#: Calls averaging less than this run on the event loop.
INLINE_BELOW_S: Final = 100e-6
#: Weight of the newest duration in the running average.
SMOOTHING: Final = 0.2

T = TypeVar("T")


class RunPlacement:
    """Calls a function inline or in ``executor`` by its recent average duration."""

    def __init__(
        self, executor: Executor, inline_below_s: float = INLINE_BELOW_S, cpu_timed: bool = True
    ) -> None:
        self._executor = executor
        self._inline_below_s = inline_below_s
        self._cpu_timed = cpu_timed
        self.average_s = math.inf

    @property
    def inline(self) -> bool:
        """Whether the next call runs on the event loop."""
        return self.average_s < self._inline_below_s

    async def call(self, function: Callable[[], T], timed: Callable[[float], None] | None = None) -> T:
        """``function()``, on the event loop or in the executor; ``timed`` also gets its duration."""
        if self.inline:
            return self._timed(function, timed)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._timed, function, timed)

    def _timed(self, function: Callable[[], T], timed: Callable[[float], None] | None) -> T:
        started, started_cpu = time.perf_counter(), time.thread_time()
        try:
            return function()
        finally:
            cpu = time.thread_time() - started_cpu
            self._observe(cpu)
            if timed is not None:
                timed(cpu if self._cpu_timed else time.perf_counter() - started)

    def _observe(self, seconds: float) -> None:
        previous = self.average_s
        self.average_s = seconds if math.isinf(previous) else previous + SMOOTHING * (seconds - previous)
