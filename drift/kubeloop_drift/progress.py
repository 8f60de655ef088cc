"""Progress lines on stderr: one per stage, with its duration, so long checks show where they are."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    """Times named stages; prints ``kubeloop drift: <stage> ... <seconds>s`` unless quiet."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream
        self.timings: dict[str, float] = {}
        self._started = time.perf_counter()

    def note(self, message: str) -> None:
        """A line of its own (a warning or a fact), unless quiet."""
        if not self.quiet:
            print(f"kubeloop drift: {message}", file=self.stream or sys.stderr, flush=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[list[str]]:
        """Time the block; the caller may append details to the yielded list for the line."""
        details: list[str] = []
        started = time.perf_counter()
        yield details
        elapsed = time.perf_counter() - started
        self.timings[name] = self.timings.get(name, 0.0) + elapsed
        suffix = f" ({'; '.join(details)})" if details else ""
        self.note(f"{name}{suffix} {elapsed:.2f}s")

    def total_seconds(self) -> float:
        return time.perf_counter() - self._started
