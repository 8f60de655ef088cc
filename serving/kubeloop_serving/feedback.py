"""Ground truth posted to ``POST /v2/models/{name}/feedback``, appended to the label sink as Parquet.

The body (JSON)::

    {"request_ids": ["r1", "r2"], "labels": [1, 0], "rows": [0, 3], "timestamp": "2026-11-30T12:00:00Z"}

``rows`` (default: 0 for every label) names the row of a multi-row request; ``timestamp`` (ISO 8601
or epoch milliseconds; default: now) is when the labels became known. Labels are all numbers
(booleans count as 0/1) or all strings. Each call is written as one file before it is
acknowledged (``{"accepted": n}``), with the layout of kubeloop.contracts.labels.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
from fsspec.core import url_to_fs

from kubeloop.contracts.labels import LABEL, MAX_FEEDBACK_LABELS, REQUEST_ID, ROW, TIMESTAMP
from kubeloop.contracts.payload_log import partition_dir, write_payload_file
from kubeloop_serving.errors import InvalidRequestError

TIMESTAMP_TYPE = pa.timestamp("ms", tz="UTC")


def feedback_table(body: bytes, now_ms: int) -> pa.Table:
    """The labels of one feedback body as a table; InvalidRequestError naming what is wrong."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidRequestError(f"feedback is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvalidRequestError("feedback must be a JSON object")
    ids = _list(document, "request_ids")
    labels = _list(document, "labels")
    if not ids:
        raise InvalidRequestError("request_ids must not be empty")
    if len(ids) > MAX_FEEDBACK_LABELS:
        raise InvalidRequestError(f"at most {MAX_FEEDBACK_LABELS} labels per call, got {len(ids)}")
    if len(labels) != len(ids):
        raise InvalidRequestError(f"{len(ids)} request_ids but {len(labels)} labels")
    if not all(isinstance(one, str) and one for one in ids):
        raise InvalidRequestError("request_ids must be non-empty strings")
    rows = _rows(document.get("rows"), len(ids))
    stamp = _timestamp(document.get("timestamp"), now_ms)
    return pa.table(
        {
            REQUEST_ID: pa.array(ids, pa.string()),
            ROW: pa.array(rows, pa.int32()),
            LABEL: _label_array(labels),
            TIMESTAMP: pa.array([stamp] * len(ids), TIMESTAMP_TYPE),
        }
    )


def _list(document: dict[str, Any], key: str) -> list[Any]:
    value = document.get(key)
    if not isinstance(value, list):
        raise InvalidRequestError(f"{key} must be a list")
    return value


def _rows(raw: object, count: int) -> list[int]:
    if raw is None:
        return [0] * count
    if not isinstance(raw, list) or len(raw) != count:
        raise InvalidRequestError(f"rows must be a list of {count} row indices, one per label")
    if not all(type(row) is int and 0 <= row < 2**31 for row in raw):
        raise InvalidRequestError("rows must be non-negative integers")
    return raw


def _timestamp(raw: object, now_ms: int) -> int:
    if raw is None:
        return now_ms
    if type(raw) is int and raw >= 0:
        return raw
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return int(parsed.timestamp() * 1000)
    raise InvalidRequestError("timestamp must be epoch milliseconds or ISO 8601 with a time zone")


def _label_array(labels: list[Any]) -> pa.Array:
    if all(isinstance(label, str) for label in labels):
        return pa.array(labels, pa.string())
    if all(isinstance(label, int | float) for label in labels):
        return pa.array([float(label) for label in labels], pa.float64())
    raise InvalidRequestError("labels must be all numbers or all strings")


class LabelSink:
    """Appends feedback to ``{uri}/{model}/dt=.../``, one file per call, written before the answer."""

    def __init__(self, uri: str, model: str) -> None:
        self._fs, self._root = url_to_fs(uri)
        self._model = model

    async def append(self, body: bytes) -> int:
        """Validate and write one feedback body; the number of labels written."""
        now_ms = time.time_ns() // 1_000_000
        table = feedback_table(body, now_ms)
        directory = partition_dir(self._root, self._model, now_ms)  # under model_labels(uri, model)
        await asyncio.to_thread(write_payload_file, self._fs, directory, table, now_ms)
        return int(table.num_rows)
