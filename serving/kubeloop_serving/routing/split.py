"""How a request picks a route: an exact smooth weighted counter, or a stable hash of a key."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Generic, TypeVar

Arm = TypeVar("Arm")
BUCKETS = 100


class SmoothSplit(Generic[Arm]):
    """nginx's smooth weighted round robin: in every run of ``sum(weights)`` consecutive picks each
    arm is picked exactly its weight's times, interleaved as evenly as possible (1% is one pick in
    each 100, 50% every other one), whatever the connections the requests came on."""

    def __init__(self, arms: Sequence[tuple[Arm, int]]) -> None:
        self._arms = [arm for arm, weight in arms if weight > 0]
        self._weights = [weight for _, weight in arms if weight > 0]
        if not self._arms:
            raise ValueError("a split needs an arm with a positive weight")
        self._total = sum(self._weights)
        self._current = [0] * len(self._arms)

    def pick(self) -> Arm:
        """The next arm (not thread-safe: called on the event loop only)."""
        current = self._current
        best = 0
        for index, weight in enumerate(self._weights):
            current[index] += weight
            if current[index] > current[best]:
                best = index
        current[best] -= self._total
        return self._arms[best]


def bucket_of(key: bytes) -> int:
    """A bucket in [0, 100) for ``key``: the same in every process and release (blake2b, not hash())."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % BUCKETS


def bucket_table(arms: Sequence[tuple[Arm, int]]) -> list[Arm]:
    """Bucket -> arm: the first ``w0`` buckets go to arm 0, the next ``w1`` to arm 1, ... (sum: 100)."""
    table = [arm for arm, weight in arms for _ in range(weight)]
    if len(table) != BUCKETS:
        raise ValueError(f"weights must sum to {BUCKETS}, not {len(table)}")
    return table
