"""The current window, read from the inference server's payload log (kubeloop.contracts.payload_log).

A window is either a duration back from
now (rows with ``_timestamp >= now - duration``) or the newest N rows. Partitions are pruned by
date (one day of slack, for files written across midnight) and files by the ``_timestamp``
statistics in their Parquet footers; files that are still being written (any other name) are
ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kubeloop.contracts.payload_log import TIMESTAMP_COLUMN, file_millis, model_dir, partition_day
from kubeloop_drift.errors import EmptyInputError, SchemaMismatchError, UnreadableInputError, UsageError
from kubeloop_drift.sources import filesystem_for, one_line, read_files, string_columns

DURATION = re.compile(r"^([0-9]+)(s|m|h|d)$")
MAX_WINDOW_SECONDS = 99_999 * 86_400
PARTITION_SLACK = timedelta(days=1, hours=1)
"""Rows of partition dt=D are assumed to lie before D + this (a file spans midnight)."""
MILLIS_PER_UNIT = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}


def parse_duration(text: str) -> timedelta:
    """'30m', '24h', '7d' (and '90s') as a timedelta."""
    match = DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise UsageError(
            f"bad window duration {text!r}: expected a positive number with s, m, h or d, e.g. 24h"
        )
    amount, unit = int(match.group(1)), match.group(2)
    seconds = amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    if seconds > MAX_WINDOW_SECONDS:  # now - window must still be a date
        raise UsageError(f"bad window duration {text!r}: at most 99999d")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class PayloadFile:
    path: str
    day: date


@dataclass
class PayloadWindow:
    """The payload files of a window and how to read its rows."""

    description: dict[str, Any]
    filesystem: Any
    files: list[PayloadFile]
    last_rows: int | None = None
    start: datetime | None = None
    schema: pa.Schema = field(default_factory=lambda: pa.schema([]))

    def read(self, columns: list[str]) -> pa.Table:
        """The window's rows, with the given columns (and the timestamp)."""
        wanted = list(dict.fromkeys([*columns, TIMESTAMP_COLUMN]))
        paths = [f.path for f in self.files]
        table = read_files(self.filesystem, paths, "parquet", wanted, string_columns(self.schema, wanted))
        if TIMESTAMP_COLUMN not in table.column_names:
            raise SchemaMismatchError(f"the payload log has no {TIMESTAMP_COLUMN} column")
        if self.start is not None:
            since = pa.scalar(self.start, type=pa.timestamp("ms", tz="UTC"))
            stamps = pc.cast(table.column(TIMESTAMP_COLUMN), pa.timestamp("ms", tz="UTC"))
            table = table.filter(pc.greater_equal(stamps, since))
        if self.last_rows is not None and table.num_rows > self.last_rows:
            table = table.take(newest_rows(table.column(TIMESTAMP_COLUMN), self.last_rows))
        if table.num_rows == 0:
            raise EmptyInputError(f"the payload window has no rows ({_window_words(self.description)})")
        self.description["rows"] = table.num_rows
        bounds = pc.min_max(table.column(TIMESTAMP_COLUMN))
        for key, bound in (("first_timestamp", "min"), ("last_timestamp", "max")):
            value = bounds[bound].as_py()
            self.description[key] = value.isoformat() if value is not None else None
        return table


def newest_rows(timestamps: pa.ChunkedArray, count: int) -> pa.Array:
    """Indices of the ``count`` rows with the newest timestamps (nulls count as oldest), in row order."""
    millis = pc.cast(pc.cast(timestamps, pa.timestamp("ms", tz="UTC")), pa.int64()).to_numpy(
        zero_copy_only=False
    )
    millis = np.nan_to_num(millis.astype(np.float64), nan=-np.inf)
    newest = np.argpartition(-millis, count - 1)[:count]
    return pa.array(np.sort(newest))


def payload_window(
    sink_uri: str,
    model: str,
    duration: str | None = None,
    last_rows: int | None = None,
    now: datetime | None = None,
) -> PayloadWindow:
    """Find the files of a window (exactly one of ``duration`` and ``last_rows``)."""
    if (duration is None) == (last_rows is None):
        raise UsageError("give exactly one of --window-duration and --last-rows")
    if last_rows is not None and last_rows < 1:
        raise UsageError("--last-rows must be at least 1")
    filesystem, sink_path = filesystem_for(sink_uri)
    partitions = list_partitions(filesystem, model_dir(sink_path, model), model_dir(sink_uri, model))
    description: dict[str, Any] = {"payload_log": sink_uri, "model": model}
    if duration is not None:
        now = now or datetime.now(UTC)
        start = now - parse_duration(duration)
        description["window"] = {"duration": duration, "start": start.isoformat(), "end": now.isoformat()}
        first_day = (start - PARTITION_SLACK).date()
        listed = [
            f for day, path in partitions if day >= first_day for f in list_files(filesystem, path, day)
        ]
        start_millis = start.timestamp() * 1000
        files = [f for f in listed if _timestamp_range(filesystem, f)[1] >= start_millis]  # footers only
        window = PayloadWindow(description, filesystem, files, start=start)
    else:
        assert last_rows is not None
        description["window"] = {"last_rows": last_rows}
        window = PayloadWindow(
            description, filesystem, newest_files(filesystem, partitions, last_rows), last_rows
        )
    if not window.files:
        raise EmptyInputError(f"the payload window has no files ({_window_words(description)})")
    description["files"] = len(window.files)
    window.schema = _schema_of_newest(filesystem, window.files)
    return window


def list_partitions(filesystem: Any, root: str, uri: str) -> list[tuple[date, str]]:
    """The dt=YYYY-MM-DD folders under a model's log, newest first."""
    try:
        entries = filesystem.ls(root, detail=False)
    except FileNotFoundError as error:
        raise EmptyInputError(f"no payload log at {uri}") from error
    except OSError as error:
        raise UnreadableInputError(f"cannot list {uri}: {one_line(error)}") from error
    partitions = []
    for entry in entries:
        day = partition_day(str(entry))
        if day is not None:
            partitions.append((day, str(entry).rstrip("/")))
    return sorted(partitions, reverse=True)


def list_files(filesystem: Any, partition: str, day: date) -> list[PayloadFile]:
    """The complete payload files of one partition, newest name first."""
    try:
        names = [str(name) for name in filesystem.ls(partition, detail=False)]
    except OSError as error:
        raise UnreadableInputError(f"cannot list {partition}: {one_line(error)}") from error
    found = [(millis, name) for name in names if (millis := file_millis(name)) is not None]
    return [PayloadFile(name, day) for _, name in sorted(found, reverse=True)]


def newest_files(filesystem: Any, partitions: list[tuple[date, str]], count: int) -> list[PayloadFile]:
    """The files that can hold any of the ``count`` newest rows, read from Parquet footers only.

    Files sorted by newest timestamp; the prefix that holds ``count`` rows bounds the cutoff
    from below by its oldest timestamp T; every file with a row at or after T is a candidate.
    Older partitions are listed only while they could reach T.
    """
    stats: list[tuple[float, float, int, PayloadFile]] = []
    for day, partition in partitions:
        if sum(s[2] for s in stats) >= count:
            lower_bound = _cutoff_lower_bound(stats, count)
            partition_end = datetime(day.year, day.month, day.day, tzinfo=UTC) + PARTITION_SLACK
            if partition_end.timestamp() * 1000 <= lower_bound:
                break
        stats += [(*_timestamp_range(filesystem, f), f) for f in list_files(filesystem, partition, day)]
    if not stats:
        return []
    lower_bound = _cutoff_lower_bound(stats, count)
    return [entry[3] for entry in stats if entry[1] >= lower_bound]


def _cutoff_lower_bound(stats: list[tuple[float, float, int, PayloadFile]], count: int) -> float:
    rows, oldest = 0, np.inf
    for first, _newest, size, _ in sorted(stats, key=lambda s: s[1], reverse=True):
        rows, oldest = rows + size, min(oldest, first)
        if rows >= count:
            break
    return -np.inf if rows < count else float(oldest)


def _timestamp_range(filesystem: Any, payload_file: PayloadFile) -> tuple[float, float, int]:
    """(oldest, newest) timestamp in epoch millis and the row count, from the Parquet footer."""
    try:
        with filesystem.open(payload_file.path, "rb") as handle:
            metadata = pq.ParquetFile(handle).metadata
            index = metadata.schema.to_arrow_schema().get_field_index(TIMESTAMP_COLUMN)
            field_type = metadata.schema.to_arrow_schema().field(index).type if index >= 0 else None
            if field_type is None or not pa.types.is_timestamp(field_type):
                return -np.inf, np.inf, metadata.num_rows
            scale = MILLIS_PER_UNIT[field_type.unit]
            firsts, lasts = [], []
            for group in range(metadata.num_row_groups):
                statistics = metadata.row_group(group).column(index).statistics
                if metadata.row_group(group).num_rows == 0:
                    continue
                if statistics is None or not statistics.has_min_max:
                    return -np.inf, np.inf, metadata.num_rows
                firsts.append(float(statistics.min_raw) * scale)
                lasts.append(float(statistics.max_raw) * scale)
            if not firsts:
                return np.inf, -np.inf, 0
            return min(firsts), max(lasts), metadata.num_rows
    except (OSError, pa.ArrowException) as error:
        raise UnreadableInputError(f"cannot read {payload_file.path}: {one_line(error)}") from error


def _schema_of_newest(filesystem: Any, files: list[PayloadFile]) -> pa.Schema:
    newest = max(files, key=lambda f: (f.day, f.path.rsplit("/", 1)[-1]))
    try:
        with filesystem.open(newest.path, "rb") as handle:
            return pq.read_schema(handle)
    except (OSError, pa.ArrowException) as error:
        raise UnreadableInputError(f"cannot read {newest.path}: {one_line(error)}") from error


def _window_words(description: dict[str, Any]) -> str:
    window = description.get("window", {})
    what = f"last {window['last_rows']} rows" if "last_rows" in window else f"last {window.get('duration')}"
    return f"model {description.get('model')!r} in {description.get('payload_log')}, {what}"
