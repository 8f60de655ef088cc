"""Ground truth read from a label source (kubeloop.contracts.labels): newest label per prediction."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kubeloop.contracts.labels import LABEL, REQUEST_ID, ROW, TIMESTAMP
from kubeloop_drift.errors import EmptyInputError, SchemaMismatchError
from kubeloop_drift.sources import read_table, resolve_source

KEY_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class LabelSet:
    """One label per (request id, row); ``timestamp_ms`` is NaN where the source had none."""

    key: pa.Array
    request_id: list[str]
    row: np.ndarray[Any, np.dtype[np.int64]]
    label: np.ndarray[Any, Any]
    timestamp_ms: np.ndarray[Any, np.dtype[np.float64]]

    def __len__(self) -> int:
        return len(self.request_id)

    def records(self) -> Iterator[tuple[str, int, Any, float]]:
        """(request id, row, label, timestamp in epoch millis) per label."""
        for index, request_id in enumerate(self.request_id):
            label = self.label[index]
            value = label.item() if isinstance(label, np.generic) else label
            yield request_id, int(self.row[index]), value, float(self.timestamp_ms[index])


def prediction_keys(request_id: pa.Array | pa.ChunkedArray, row: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``{request_id}\\x1f{row}``: the join key of a prediction or a label."""
    joined = pc.binary_join_element_wise(
        pc.cast(request_id, pa.string()), pc.cast(pc.fill_null(row, 0), pa.string()), KEY_SEPARATOR
    )
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


def read_labels(uri: str) -> LabelSet:
    """Every label under ``uri`` (a Parquet file or folder); the newest per prediction wins."""
    source = resolve_source(uri)
    table = read_table(source, [REQUEST_ID, ROW, LABEL, TIMESTAMP])
    return label_set(table, uri)


def label_set(table: pa.Table, where: str = "the labels") -> LabelSet:
    """Labels from a table of the contract's columns (``row`` and ``timestamp`` optional)."""
    for required in (REQUEST_ID, LABEL):
        if required not in table.column_names:
            raise SchemaMismatchError(f"{where} has no {required!r} column")
    table = table.filter(pc.and_(pc.is_valid(table[REQUEST_ID]), pc.is_valid(table[LABEL])))
    if table.num_rows == 0:
        raise EmptyInputError(f"{where} holds no labels")
    rows = table[ROW] if ROW in table.column_names else pa.array(np.zeros(table.num_rows, np.int64))
    if TIMESTAMP in table.column_names and pa.types.is_timestamp(table.schema.field(TIMESTAMP).type):
        stamps = pc.cast(pc.cast(table[TIMESTAMP], pa.timestamp("ms", tz="UTC")), pa.int64())
        millis = stamps.to_numpy(zero_copy_only=False).astype(np.float64)
    else:
        millis = np.full(table.num_rows, np.nan)
    keys = prediction_keys(table[REQUEST_ID], rows).to_numpy(zero_copy_only=False)
    # newest last (no timestamp counts as oldest, read order breaks ties), then the last per key
    order = np.lexsort((np.arange(len(keys)), np.nan_to_num(millis, nan=-np.inf)))
    reversed_keys = keys[order][::-1]
    _, first = np.unique(reversed_keys, return_index=True)
    keep = np.sort(order[::-1][first])
    label = table[LABEL].to_numpy(zero_copy_only=False)[keep]
    label_values = label.astype(np.float64) if label.dtype.kind in "biuf" else label
    return LabelSet(
        key=pa.array(keys[keep], pa.string()),
        request_id=[str(v) for v in table[REQUEST_ID].to_numpy(zero_copy_only=False)[keep]],
        row=np.asarray(pc.fill_null(rows, 0).to_numpy(zero_copy_only=False), np.int64)[keep],
        label=label_values,
        timestamp_ms=millis[keep],
    )
