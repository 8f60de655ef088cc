"""Where model runs happen (kubeloop_serving.placement) and request ids (kubeloop_serving.ids)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from kubeloop_serving.batcher import AdaptiveBatcher, SerialRunner
from kubeloop_serving.datatypes import Tensors
from kubeloop_serving.ids import RequestIds, new_request_id
from kubeloop_serving.placement import RunPlacement

pytestmark = pytest.mark.unit


def where() -> str:
    return threading.current_thread().name


def burn_cpu(seconds: float) -> str:
    """Spend ``seconds`` of this thread's CPU time (what the placement measures)."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass
    return where()


def placements(inline_below_s: float, *calls: object) -> list[str]:
    """The thread each call ran in, made one after the other from an event loop."""

    async def scenario() -> list[str]:
        with ThreadPoolExecutor(1, thread_name_prefix="worker") as executor:
            placement = RunPlacement(executor, inline_below_s)
            return [await placement.call(call) for call in calls]  # type: ignore[arg-type]

    return asyncio.run(scenario())


def test_short_calls_run_on_the_event_loop_once_measured() -> None:
    ran = placements(1.0, where, where, where)
    assert ran[0].startswith("worker")  # nothing measured yet
    assert ran[1:] == [threading.current_thread().name] * 2


def test_calls_longer_than_the_bound_stay_in_the_worker_thread() -> None:
    ran = placements(0.005, lambda: burn_cpu(0.02), where, where)
    assert all(name.startswith("worker") for name in ran)


def test_a_call_that_grows_long_sends_the_next_ones_back_to_the_thread() -> None:
    ran = placements(0.005, where, where, lambda: burn_cpu(0.1), where)
    assert ran[1] == ran[2] == threading.current_thread().name
    assert ran[3].startswith("worker")


def test_a_failing_inline_call_raises_where_it_is_awaited() -> None:
    def fail() -> str:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        placements(1.0, where, fail)


@pytest.mark.parametrize("cpu_timed", [True, False])
def test_timed_gets_cpu_or_wall_seconds_and_placement_goes_by_cpu_time(cpu_timed: bool) -> None:
    # a run that waits on work done elsewhere (onnxruntime's other intra-op threads, a GPU) costs this
    # thread no CPU, yet a request waiting for it waits its whole length: the batch budget needs that
    # unless the whole run is on this thread
    async def scenario() -> tuple[list[float], RunPlacement]:
        with ThreadPoolExecutor(1, thread_name_prefix="worker") as executor:
            placement = RunPlacement(executor, inline_below_s=0.005, cpu_timed=cpu_timed)
            timed: list[float] = []
            await placement.call(lambda: time.sleep(0.05), timed.append)
            return timed, placement

    timed, placement = asyncio.run(scenario())
    assert timed[0] < 0.005 if cpu_timed else timed[0] >= 0.05
    assert placement.average_s < 0.005 and placement.inline


def ignore(rows: int) -> None:
    """The batch-size observer: not what these tests look at."""


def run_where(inputs: Tensors) -> Tensors:
    return {"where": np.full(inputs["x"].shape[0], where())}


@pytest.mark.parametrize("batching", [False, True])
def test_the_runners_place_runs_by_their_bound(batching: bool) -> None:
    async def threads(inline_below_s: float) -> list[str]:
        if batching:
            runner: AdaptiveBatcher | SerialRunner = AdaptiveBatcher(
                run_where, 4, 0.0, ignore, inline_below_s
            )
        else:
            runner = SerialRunner(run_where, ignore, inline_below_s)
        runner.start()
        names = [str((await runner.infer({"x": np.zeros((1, 2))}, 1))["where"][0]) for _ in range(3)]
        await runner.close()
        return names

    assert all(name.startswith("onnxruntime") for name in asyncio.run(threads(0.0)))
    assert asyncio.run(threads(1.0))[1:] == [threading.current_thread().name] * 2


def test_request_ids_are_32_hex_and_unique_across_refills() -> None:
    ids = RequestIds()
    made = [ids.new() for _ in range(5_000)]  # about 20 refills of the buffer
    assert all(re.fullmatch(r"[0-9a-f]{32}", made_id) for made_id in made)
    assert len(set(made)) == len(made)
    assert new_request_id() != new_request_id()
