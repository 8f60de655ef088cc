"""Pure conversion of logged requests into the payload-log Arrow table (kubeloop.contracts.payload_log).

One row per batch row. Columns: ``_timestamp`` (timestamp[ms, UTC]), ``_request_id``, ``_row``
(the row's index in its request), ``_model``, ``_version``, ``_track``; then per input: a 2-D
input [n, k] gives k columns (the model's ``kubeloop.feature_names`` for its first input, else
``{input}_{i}``), a 1-D input [n] one scalar column ``{input}``, any other rank one list column
``{input}`` (the row's slice, flattened); per output: ``_output.{output}`` (scalar per row),
``_output.{output}.{j}`` for [n, m], else a list; ``_agrees`` for shadow rows compared with
stable's answer; last ``_attribute.{name}`` per sensitive attribute passed with the request
(kubeloop_serving.attributes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

import numpy as np
import pyarrow as pa

from kubeloop.contracts.payload_log import (
    AGREES_COLUMN,
    MODEL_COLUMN,
    OUTPUT_PREFIX,
    REQUEST_ID_COLUMN,
    ROW_COLUMN,
    TIMESTAMP_COLUMN,
    TRACK_COLUMN,
    VERSION_COLUMN,
    attribute_column,
)
from kubeloop_serving.attributes import Attributes
from kubeloop_serving.datatypes import Tensors

TIMESTAMP_TYPE = pa.timestamp("ms", tz="UTC")
BASE_SCHEMA = pa.schema(
    [
        (TIMESTAMP_COLUMN, TIMESTAMP_TYPE),
        (REQUEST_ID_COLUMN, pa.string()),
        (ROW_COLUMN, pa.int32()),
        (MODEL_COLUMN, pa.string()),
        (VERSION_COLUMN, pa.string()),
        (TRACK_COLUMN, pa.string()),
    ]
)


@dataclass(frozen=True)
class PayloadRecord:
    """One sampled request: what came in, what went out, and when."""

    timestamp_ms: int
    request_id: str
    version: str
    inputs: Tensors
    outputs: Tensors
    track: str = "stable"
    agrees: np.ndarray[Any, np.dtype[np.bool_]] | None = None
    """Per row, whether a shadow's outputs agree with stable's (shadow records only)."""
    attributes: Attributes = field(default_factory=dict)
    """Sensitive attributes passed with the request: name -> one value per row."""

    @property
    def rows(self) -> int:
        """Rows this request contributes: the shared first dimension of its inputs, else 1."""
        return row_count(self.inputs)

    @property
    def nbytes(self) -> int:
        """Tensor bytes this record holds."""
        return sum(array.nbytes for array in (*self.inputs.values(), *self.outputs.values()))


@dataclass(frozen=True)
class FeatureNaming:
    """Column names for the features of one 2-D input (from ``kubeloop.feature_names``)."""

    input_name: str | None = None
    feature_names: tuple[str, ...] = ()

    def columns(self, input_name: str, width: int) -> list[str]:
        """Names of the ``width`` feature columns of ``input_name``."""
        if input_name == self.input_name and len(self.feature_names) == width:
            return list(self.feature_names)
        return [f"{input_name}_{index}" for index in range(width)]


def row_count(inputs: Tensors) -> int:
    """The first dimension shared by every input, or 1 when there is none."""
    firsts = {array.shape[0] if array.ndim else None for array in inputs.values()}
    if len(firsts) == 1:
        (first,) = firsts
        if first is not None:
            return int(first)
    return 1


def payload_table(model: str, records: Sequence[PayloadRecord], naming: FeatureNaming) -> pa.Table:
    """The rows of ``records`` as one table (records of differing layouts become separate groups)."""
    groups = [list(group) for _, group in groupby(records, key=_layout)]
    tables = [_group_table(model, group, naming) for group in groups if group]
    if not tables:
        return BASE_SCHEMA.empty_table()
    return pa.concat_tables(tables, promote_options="default")


def _layout(record: PayloadRecord) -> tuple[object, ...]:
    rows = record.rows
    tensors = tuple(
        (name, _block(array, rows).shape[1:], array.dtype.str) for name, array in _tensors(record)
    )
    return (*tensors, record.agrees is not None, tuple(record.attributes))


def _tensors(record: PayloadRecord) -> list[tuple[str, np.ndarray[Any, Any]]]:
    return [
        *record.inputs.items(),
        *((OUTPUT_PREFIX + name, array) for name, array in record.outputs.items()),
    ]


def _block(array: np.ndarray[Any, Any], rows: int) -> np.ndarray[Any, Any]:
    """The tensor as [rows, ...]: per-row when its first dimension is the row count, else repeated."""
    if array.ndim >= 1 and array.shape[0] == rows:
        return array
    return np.broadcast_to(array, (rows, *array.shape))


def _group_table(model: str, records: list[PayloadRecord], naming: FeatureNaming) -> pa.Table:
    counts = [record.rows for record in records]
    total = sum(counts)
    columns: dict[str, pa.Array] = {
        TIMESTAMP_COLUMN: pa.array(np.repeat([r.timestamp_ms for r in records], counts), TIMESTAMP_TYPE),
        REQUEST_ID_COLUMN: pa.array(np.repeat([r.request_id for r in records], counts).tolist(), pa.string()),
        ROW_COLUMN: pa.array(np.concatenate([np.arange(count, dtype=np.int32) for count in counts])),
        MODEL_COLUMN: pa.array([model] * total, pa.string()),
        VERSION_COLUMN: pa.array(np.repeat([r.version for r in records], counts).tolist(), pa.string()),
        TRACK_COLUMN: pa.array(np.repeat([r.track for r in records], counts).tolist(), pa.string()),
    }
    for index, (name, _) in enumerate(_tensors(records[0])):
        stacked = np.concatenate([_block(_tensors(r)[index][1], r.rows) for r in records])
        columns.update(tensor_columns(name, stacked, naming))
    if records[0].agrees is not None:
        agrees = [np.broadcast_to(r.agrees if r.agrees is not None else False, (r.rows,)) for r in records]
        columns[AGREES_COLUMN] = pa.array(np.concatenate(agrees), pa.bool_())
    for name in records[0].attributes:
        values = [value for r in records for value in _per_row(r.attributes[name], r.rows)]
        columns[attribute_column(name)] = pa.array(values, pa.string())
    return pa.table(columns)


def _per_row(values: tuple[str | None, ...], rows: int) -> tuple[str | None, ...]:
    return values if len(values) == rows else (None,) * rows


def tensor_columns(name: str, block: np.ndarray[Any, Any], naming: FeatureNaming) -> dict[str, pa.Array]:
    """Columns for a [rows, ...] block of one input (``name``) or output (``_output.{name}``)."""
    if block.ndim == 1:
        return {name: _arrow(block)}
    if block.ndim == 2:
        width = block.shape[1]
        is_output = name.startswith(OUTPUT_PREFIX)
        names = [f"{name}.{j}" for j in range(width)] if is_output else naming.columns(name, width)
        return {column: _arrow(block[:, j]) for j, column in enumerate(names)}
    flat = block.reshape(block.shape[0], -1)
    offsets = np.arange(flat.shape[0] + 1, dtype=np.int32) * flat.shape[1]
    return {name: pa.ListArray.from_arrays(pa.array(offsets), _arrow(flat.reshape(-1)))}


def _arrow(values: np.ndarray[Any, Any]) -> pa.Array:
    if values.dtype.kind in "OSU":
        return pa.array(
            [str(v) if not isinstance(v, bytes) else v.decode("utf-8", "replace") for v in values]
        )
    if values.dtype == np.float16:
        values = values.astype(np.float32)
    return pa.array(np.ascontiguousarray(values))
