"""The split counters and the routes file watcher, without servers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from kubeloop.contracts.routing import Canary, Routes
from kubeloop_serving.routing.split import SmoothSplit, bucket_of, bucket_table
from kubeloop_serving.routing.table import RoutesFile, RouteTable
from tests.unit.serving.routing_helpers import publish_routes

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("weight", [1, 5, 10, 25, 50, 99])
def test_every_hundred_picks_hold_exactly_the_weight(weight: int) -> None:
    split = SmoothSplit([(True, weight), (False, 100 - weight)])
    picks = [split.pick() for _ in range(10_000)]
    assert all(sum(picks[start : start + 100]) == weight for start in range(0, 10_000, 100))


def test_picks_are_spread_out_not_bunched() -> None:
    split = SmoothSplit([(True, 50), (False, 50)])
    assert [split.pick() for _ in range(6)] in ([True, False] * 3, [False, True] * 3)


def test_buckets_are_stable_and_follow_the_weights() -> None:
    assert bucket_of(b"user-42") == bucket_of(b"user-42")
    table = bucket_table([("a", 30), ("b", 70)])
    assert Counter(table) == {"a": 30, "b": 70}
    shares = Counter(table[bucket_of(f"user-{i}".encode())] for i in range(20_000))
    assert abs(shares["b"] / 20_000 - 0.70) < 0.02


def test_the_watcher_follows_configmap_swaps_and_keeps_the_last_good_table(tmp_path: Path) -> None:
    published: list[RouteTable] = []
    errors: list[None] = []
    link = publish_routes(tmp_path, Routes(canary=Canary(url="http://c", weight_percent=5)))
    watcher = RoutesFile(str(link), published.append, lambda: errors.append(None))
    watcher.check()
    assert watcher.table.routes.canary == Canary(url="http://c", weight_percent=5)
    watcher.check()
    assert len(published) == 1  # unchanged: not reloaded
    publish_routes(tmp_path, Routes(canary=Canary(url="http://c", weight_percent=25)))
    watcher.check()
    assert watcher.table.routes.canary is not None and watcher.table.routes.canary.weight_percent == 25
    publish_routes(tmp_path, "not json")
    watcher.check()
    watcher.check()
    assert len(errors) == 1 and watcher.table is published[-1] and len(published) == 2
    publish_routes(tmp_path, Routes(canary=Canary(url="http://c", weight_percent=25)))
    watcher.check()
    assert len(published) == 2  # the same table again keeps its counters
    (tmp_path / "..data").unlink()
    watcher.check()
    assert len(errors) == 2 and watcher.table is published[-1]
