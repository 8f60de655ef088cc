"""The payload log: written by the inference server, read by the drift check.

Layout: ``{sink}/{model}/dt=YYYY-MM-DD/{unix_millis}-{8 hex}.parquet``, the day being the UTC day of
the rows, one row per input row. Columns: ``_timestamp`` (timestamp[ms, UTC]), ``_request_id``,
``_model``, ``_version``, ``_track`` (the track that computed the outputs: stable, canary, shadow
or an A/B variant; absent in files written before it existed, read as null), the features by name,
then ``_output.*``, and ``_agrees`` (bool: a shadow row's outputs agree with stable's; null on other
rows, absent from files without shadow rows). A file is written under a hidden
name and renamed when complete (on file systems that can), so a reader takes only names that match.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, date, datetime
from typing import Any

TIMESTAMP_COLUMN = "_timestamp"
REQUEST_ID_COLUMN = "_request_id"
MODEL_COLUMN = "_model"
VERSION_COLUMN = "_version"
TRACK_COLUMN = "_track"
AGREES_COLUMN = "_agrees"
OUTPUT_PREFIX = "_output."
_FILE_NAME = re.compile(r"^(\d+)-[0-9a-f]{8}\.parquet$")
_PARTITION_NAME = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


def model_dir(sink: str, model: str) -> str:
    """Where one model's rows live under a sink (a path or URI)."""
    return f"{sink.rstrip('/')}/{model}"


def partition_dir(sink: str, model: str, timestamp_ms: int) -> str:
    """``{sink}/{model}/dt=YYYY-MM-DD`` for the UTC day of ``timestamp_ms``."""
    day = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).strftime("%Y-%m-%d")
    return f"{model_dir(sink, model)}/dt={day}"


def file_name(now_ms: int) -> str:
    """``{unix_millis}-{8 hex}.parquet``: unique across replicas, sortable by time."""
    return f"{now_ms}-{secrets.token_hex(4)}.parquet"


def partition_day(name: str) -> date | None:
    """The day of a ``dt=YYYY-MM-DD`` folder (its last path part), None for anything else."""
    match = _PARTITION_NAME.match(name.rstrip("/").rsplit("/", 1)[-1])
    return date.fromisoformat(match.group(1)) if match else None


def file_millis(name: str) -> int | None:
    """When a complete payload file was written (its last path part), None for any other name."""
    match = _FILE_NAME.match(name.rsplit("/", 1)[-1])
    return int(match.group(1)) if match else None


def write_payload_file(filesystem: Any, directory: str, table: Any, now_ms: int) -> str:
    """Write one Parquet file (a pyarrow Table) into a partition; returns its path.

    Local files appear under their final name only when complete; object stores publish a
    whole object at once anyway.
    """
    import pyarrow.parquet as pq

    path = f"{directory}/{file_name(now_ms)}"
    filesystem.makedirs(directory, exist_ok=True)
    protocol = getattr(filesystem, "protocol", "")
    protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
    if "file" not in protocols and "local" not in protocols:
        with filesystem.open(path, "wb") as sink:
            pq.write_table(table, sink)
        return path
    partial = f"{directory}/.{path.rsplit('/', 1)[1]}.partial"
    with filesystem.open(partial, "wb") as sink:
        pq.write_table(table, sink)
    filesystem.mv(partial, path)
    return path
