"""Mirror requests to a shadow: fire-and-forget through a bounded queue, answers compared, never returned.

The caller's path only appends to a queue (``submit`` never waits); a fixed number of workers
send the copies, over the protocol the request came in (REST, or gRPC ModelInfer). A full queue
drops the copy (counted). Each answer is compared row by row with the answer stable gave the
caller, counted, and written to the payload log as ``shadow`` rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from kubeloop_serving.attributes import Attributes
from kubeloop_serving.datatypes import Tensors
from kubeloop_serving.metrics import ServingMetrics
from kubeloop_serving.oip_grpc.codec import decode_infer_response
from kubeloop_serving.payload_table import PayloadRecord, row_count
from kubeloop_serving.routing.compare import BoolArray, decode_answer, rows_agree
from kubeloop_serving.routing.forward import Forwarder, UnreachableError
from kubeloop_serving.routing.grpc_forward import GrpcForwarder

log = logging.getLogger(__name__)
SHADOW_TRACK = "shadow"


class Answered(Protocol):
    """What stable answered (a REST Inference, a gRPC call's Computed)."""

    @property
    def request_id(self) -> str: ...
    @property
    def inputs(self) -> Tensors: ...
    @property
    def outputs(self) -> Tensors: ...
    @property
    def attributes(self) -> Attributes: ...


Decoded = tuple[str | None, Tensors]


@dataclass(frozen=True)
class ShadowCopy:
    """A request to send to the shadow: ``url`` is a REST URL, or a gRPC target when ``grpc``."""

    url: str
    body: bytes
    headers: Sequence[tuple[str, Any]]
    stable: Answered
    received_ms: int
    grpc: bool = False


class ShadowMirror:
    """``concurrency`` workers sending queued copies to the shadow through their own pool."""

    def __init__(
        self,
        metrics: ServingMetrics,
        model: str,
        log_payload: Callable[[PayloadRecord], None],
        *,
        concurrency: int,
        connect_timeout_s: float,
        timeout_s: float,
        max_decoded_bytes: int,
    ) -> None:
        self._model = model
        self._log_payload = log_payload
        self._concurrency = concurrency
        self._max_decoded_bytes = max_decoded_bytes
        self._forwarder = Forwarder(connect_timeout_s, timeout_s, max_connections=concurrency)
        self._grpc = GrpcForwarder(connect_timeout_s, timeout_s)
        self._queue: asyncio.Queue[ShadowCopy] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._metrics = metrics
        self._dropped = metrics.shadow_dropped.labels(model)
        self._agree = metrics.shadow_rows.labels(model, "agree")
        self._disagree = metrics.shadow_rows.labels(model, "disagree")

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"kubeloop-shadow-{index}")
            for index in range(self._concurrency)
        ]

    def submit(self, copy: ShadowCopy, queue_size: int) -> None:
        """Queue a copy, or drop it (counted) when ``queue_size`` copies already wait."""
        if self._queue.qsize() >= queue_size:
            self._dropped.inc()
            return
        self._queue.put_nowait(copy)

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    async def close(self) -> None:
        """Stop the workers (copies still queued are not sent) and the pool."""
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []
        await self._forwarder.close()
        await self._grpc.close()

    async def _work(self) -> None:
        while True:
            copy = await self._queue.get()
            try:
                await self._mirror(copy)
            except Exception:  # a worker must outlive any one copy
                log.exception("shadow: unexpected error")

    async def _send(self, copy: ShadowCopy) -> tuple[int, Callable[[], Decoded]]:
        """The shadow's status (REST's, for gRPC too) and how to decode its answer."""
        limit = self._max_decoded_bytes
        if copy.grpc:
            called = await self._grpc.call(copy.url, copy.body, copy.headers)
            return called.status, lambda: decode_infer_response(called.body, limit)
        answer = await self._forwarder.post(copy.url, copy.body, copy.headers)
        raw_length = dict(answer.headers).get(b"inference-header-content-length")
        return answer.status, lambda: decode_answer(
            answer.body, int(raw_length) if raw_length else None, limit
        )

    async def _mirror(self, copy: ShadowCopy) -> None:
        try:
            status, decode = await self._send(copy)
        except UnreachableError as error:
            log.debug("shadow %s gave no answer: %s", copy.url, error)
            self._metrics.shadow_requests.labels(self._model, "error").inc()
            return
        self._metrics.shadow_requests.labels(self._model, str(status)).inc()
        if status != 200:
            return
        try:
            version, outputs = decode()
            agrees = rows_agree(copy.stable.outputs, outputs)
        except Exception as error:
            log.warning("shadow answer cannot be compared with stable's: %s", error)
            self._metrics.shadow_requests.labels(self._model, "incomparable").inc()
            return
        agreeing = int(agrees.sum())
        self._agree.inc(agreeing)
        self._disagree.inc(len(agrees) - agreeing)
        stable = copy.stable
        common = {name: array for name, array in outputs.items() if name in stable.outputs}
        record = PayloadRecord(
            copy.received_ms,
            stable.request_id,
            version or "",
            stable.inputs,
            common,
            SHADOW_TRACK,
            _per_input_row(agrees, row_count(stable.inputs)),
            stable.attributes,
        )
        self._log_payload(record)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _per_input_row(agrees: BoolArray, rows: int) -> BoolArray:
    if len(agrees) == rows:
        return agrees
    return np.full(rows, bool(agrees.all()))
