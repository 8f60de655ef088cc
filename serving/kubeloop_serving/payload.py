"""Sampled payload logging to Parquet, written by a background thread (the drift check reads it).

Layout: kubeloop.contracts.payload_log (columns: payload_table).
The request path only samples and enqueues (never blocks, never raises); a full queue or a
failing sink drops rows, counted in ``kubeloop_serving_payload_log_dropped_total``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence

import pyarrow as pa
from fsspec.core import url_to_fs

from kubeloop.contracts.payload_log import partition_dir, write_payload_file
from kubeloop_serving.payload_table import (
    FeatureNaming,
    PayloadRecord,
    payload_table,
)

log = logging.getLogger(__name__)
_STOP = object()
FLUSH_BYTES = 64 * 1024 * 1024  # a file is written early rather than hold more tensor bytes than this
RowCounter = Callable[[int], None]


class PayloadLogger:
    """Bounded queue in front of a thread that writes Parquet files every N rows (or 64 MiB) or T seconds."""

    def __init__(
        self,
        sink_uri: str,
        model: str,
        naming: FeatureNaming,
        *,
        queue_size: int,
        flush_rows: int,
        flush_seconds: float,
        on_written: RowCounter,
        on_dropped: RowCounter,
    ) -> None:
        self._fs, self._root = url_to_fs(sink_uri)
        self._model = model
        self._naming = naming
        self._flush_rows = flush_rows
        self._flush_seconds = flush_seconds
        self._on_written = on_written
        self._on_dropped = on_dropped
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._write_loop, name="payload-log", daemon=True)

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def submit(self, record: PayloadRecord) -> None:
        """Enqueue a record without blocking; count its rows as dropped when the queue is full."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._on_dropped(record.rows)

    def close(self, timeout: float) -> None:
        """Write everything queued, then stop the thread (waiting at most ``timeout`` seconds)."""
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("payload log queue still full after %.1fs; unwritten rows are lost", timeout)
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("payload log writer did not finish within %.1fs", timeout)

    def _write_loop(self) -> None:
        pending: list[PayloadRecord] = []
        rows = held = 0
        oldest = 0.0
        while True:
            wait = self._flush_seconds - (time.monotonic() - oldest) if pending else None
            try:
                item = self._queue.get(timeout=max(wait, 0.0) if wait is not None else None)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._write(pending)
                return
            if isinstance(item, PayloadRecord):
                if not pending:
                    oldest = time.monotonic()
                pending.append(item)
                rows += item.rows
                held += item.nbytes
            due = time.monotonic() - oldest >= self._flush_seconds
            if pending and (rows >= self._flush_rows or held >= FLUSH_BYTES or due):
                self._write(pending)
                pending, rows, held = [], 0, 0

    def _write(self, records: Sequence[PayloadRecord]) -> None:
        by_day: dict[str, list[PayloadRecord]] = {}
        for record in records:
            by_day.setdefault(partition_dir(self._root, self._model, record.timestamp_ms), []).append(record)
        for directory, day_records in by_day.items():
            rows = sum(record.rows for record in day_records)
            try:
                self._write_file(directory, payload_table(self._model, day_records, self._naming))
            except Exception as error:
                log.warning("payload log: dropped %d rows, cannot write to %s: %s", rows, directory, error)
                self._on_dropped(rows)
            else:
                self._on_written(rows)

    def _write_file(self, directory: str, table: pa.Table) -> None:
        write_payload_file(self._fs, directory, table, time.time_ns() // 1_000_000)
