"""Adaptive batching: merge what is already queued into one onnxruntime call, off the event loop
unless runs are short (kubeloop_serving.placement).

Triton's dynamic batcher without a fixed window: a request that finds the runner idle runs at
once; requests that arrive while a batch runs queue up and leave together. The batcher waits
for company (at most ``max_wait_s``) only while other requests are already inside the server,
their bodies read in full and being decoded, so an idle server adds no latency and a client that
trickles its body never holds a batch back (bodies are read before a request comes near here).
A batch stops at the rows expected to run within ``max_run_s`` (kubeloop_serving.batch_size).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from kubeloop_serving.batch_size import BatchSizer
from kubeloop_serving.datatypes import Tensors
from kubeloop_serving.errors import ModelNotReadyError
from kubeloop_serving.placement import INLINE_BELOW_S, RunPlacement

Runner = Callable[[Tensors], Tensors]
BatchObserver = Callable[[int], None]
Outcome = Tensors | BaseException
MergeKey = tuple[object, ...]


@dataclass(eq=False)
class _Pending:
    inputs: Tensors
    rows: int
    key: MergeKey
    future: asyncio.Future[Tensors] = field(repr=False)


def merge_key(inputs: Tensors) -> MergeKey:
    """Requests merge only when every input agrees on name, non-batch dimensions and dtype.

    A request whose inputs disagree on their first dimension gets a key of its own: it runs alone.
    """
    if len(inputs) == 1:  # most models: the same key, without building a set and sorting
        ((name, array),) = inputs.items()
        return ((name, array.shape[1:], array.dtype.str),)
    if len({array.shape[:1] for array in inputs.values()}) > 1:
        return ("alone", id(inputs))
    return tuple(sorted((name, array.shape[1:], array.dtype.str) for name, array in inputs.items()))


def merge_inputs(members: Sequence[Tensors]) -> Tensors:
    """Stack the members' inputs along the batch (first) dimension."""
    return {name: np.concatenate([member[name] for member in members]) for name in members[0]}


def split_outputs(outputs: Tensors, rows: Sequence[int]) -> list[Tensors]:
    """Cut merged outputs back into per-member outputs; ValueError if an output is not per-row."""
    total = sum(rows)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise ValueError(f"output {name!r} has no batch dimension of {total} rows")
    cuts = np.cumsum(rows)[:-1]
    pieces = {name: np.split(array, cuts) for name, array in outputs.items()}
    return [{name: parts[index] for name, parts in pieces.items()} for index in range(len(rows))]


def run_batch(
    run: Runner, members: Sequence[Tensors], rows: Sequence[int], observe: BatchObserver
) -> list[Outcome]:
    """Run members as one call; if that fails, run each alone so only the bad ones fail."""
    if len(members) > 1:
        observe(sum(rows))
        try:
            return list(split_outputs(run(merge_inputs(members)), rows))
        except Exception:
            pass  # someone's input broke the merged call: isolate them
    outcomes: list[Outcome] = []
    for member, count in zip(members, rows, strict=True):
        try:
            outcomes.append(run(member))
        except Exception as error:
            outcomes.append(error)
        observe(count)
    return outcomes


class AdaptiveBatcher:
    """Queues validated requests and runs them, merged, in one worker thread."""

    def __init__(
        self,
        run: Runner,
        max_batch_size: int,
        max_wait_s: float,
        observe: BatchObserver,
        inline_below_s: float = INLINE_BELOW_S,
        max_run_s: float = 0.0,
        cpu_timed: bool = True,
    ) -> None:
        """``cpu_timed``: runs are all on the calling thread, so the budget counts its CPU time (see
        kubeloop_serving.batch_size); else their wall-clock time."""
        self._run = run
        self.sizer = BatchSizer(max_batch_size, max_run_s)
        self._max_wait_s = max_wait_s
        self._observe = observe
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._arriving = 0
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxruntime")
        self._placement = RunPlacement(self._executor, inline_below_s, cpu_timed)
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop that forms and runs batches (call from the event loop)."""
        self._worker = asyncio.create_task(self._serve(), name="kubeloop-batcher")

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Mark a request whose complete body is being decoded: a forming batch may wait briefly for it."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    async def infer(self, inputs: Tensors, rows: int) -> Tensors:
        """Outputs for one validated request, computed alone or merged with others."""
        if self._closing:
            raise ModelNotReadyError("the server is shutting down")
        future: asyncio.Future[Tensors] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(inputs, rows, merge_key(inputs), future))
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        """Refuse new requests, finish every queued one, then stop the worker thread."""
        self._closing = True
        self._wakeup.set()
        if self._worker is not None:
            await self._worker
        self._executor.shutdown(wait=True)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        place = self._placement.call
        while True:
            while not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = await self._collect(loop)
            if not batch:
                continue
            members, rows = [member.inputs for member in batch], [member.rows for member in batch]
            try:
                outcomes = await place(
                    partial(run_batch, self._run, members, rows, self._observe),
                    partial(self.sizer.observe, sum(rows)),
                )
            except (
                Exception
            ) as error:  # pragma: no cover - run_batch catches per member; never strand a request
                outcomes = [error] * len(batch)
            for member, outcome in zip(batch, outcomes, strict=True):
                _settle(member.future, outcome)

    async def _collect(self, loop: asyncio.AbstractEventLoop) -> list[_Pending]:
        batch: list[_Pending] = []
        rows = self._take(batch, 0)
        deadline = loop.time() + self._max_wait_s
        while batch and rows < self.sizer.limit and self._arriving and loop.time() < deadline:
            await asyncio.sleep(0)
            rows = self._take(batch, rows)
        return batch

    def _take(self, batch: list[_Pending], rows: int) -> int:
        """Move queued requests that fit and merge with the batch's first member into the batch."""
        kept: deque[_Pending] = deque()
        limit = self.sizer.limit
        while self._queue:
            member = self._queue.popleft()
            if member.future.done():
                continue
            fits = not batch or (member.key == batch[0].key and rows + member.rows <= limit)
            if fits and rows < limit:
                batch.append(member)
                rows += member.rows
            else:
                kept.append(member)
        self._queue = kept
        return rows


def _settle(future: asyncio.Future[Any], outcome: Outcome) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class SerialRunner:
    """Batching off: each request gets its own onnxruntime call in the worker thread."""

    def __init__(self, run: Runner, observe: BatchObserver, inline_below_s: float = INLINE_BELOW_S) -> None:
        self._run = run
        self._observe = observe
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxruntime")
        self._placement = RunPlacement(self._executor, inline_below_s)

    def start(self) -> None:
        """Nothing to start; present for symmetry with AdaptiveBatcher."""

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Nothing to track without batching."""
        yield

    async def infer(self, inputs: Tensors, rows: int) -> Tensors:
        """Outputs for one validated request."""
        if self._closing:
            raise ModelNotReadyError("the server is shutting down")
        outcome = (
            await self._placement.call(partial(run_batch, self._run, [inputs], [rows], self._observe))
        )[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def close(self) -> None:
        """Refuse new requests and wait for the running ones."""
        self._closing = True
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)
