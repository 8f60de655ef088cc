"""Turn an Arrow table into a float32 feature matrix and an encoded target.

Every column but the target and the sensitive attributes is a feature: a numeric or boolean
column gives one feature, and a list column of numbers (e.g. an image stored as a flat list of
pixels) gives one feature per element, named ``column[i]``; its lists must all have the same
length. Missing values and other column types are refused as BadData: the built-in trainer
does not guess. Sensitive attributes (the fairness gate's groups) are never features: they are
kept aside, as text of any column type (a missing value is the group ``MISSING``), and travel
with the rows through the split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from kubeloop_trainer.errors import BadDataError

Task = Literal["classification", "regression"]
FloatMatrix = npt.NDArray[np.float32]
MISSING = "(missing)"


@dataclass(frozen=True)
class Features:
    """The model's inputs and target, ready for any algorithm."""

    x: FloatMatrix
    y: npt.NDArray[Any]
    feature_names: list[str]
    classes: list[Any]  # original label values, index = encoded class; empty for regression
    sensitive: npt.NDArray[np.str_] | None = None  # [n, attributes] group values, never model inputs

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def _is_numeric(data_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(data_type) or pa.types.is_floating(data_type) or pa.types.is_boolean(data_type)
    )


def _is_numeric_list(data_type: pa.DataType) -> bool:
    is_list = (
        pa.types.is_list(data_type)
        or pa.types.is_fixed_size_list(data_type)
        or pa.types.is_large_list(data_type)
    )
    return bool(is_list and _is_numeric(data_type.value_type))


def _scalar_column(column: pa.ChunkedArray, name: str) -> FloatMatrix:
    if column.null_count:
        raise BadDataError(f"feature column {name!r} has {column.null_count} missing values")
    return np.asarray(column.to_numpy(), dtype=np.float32).reshape(-1, 1)


def _list_column(column: pa.ChunkedArray, name: str) -> FloatMatrix:
    if column.null_count:
        raise BadDataError(f"feature column {name!r} has {column.null_count} missing lists")
    lengths = set(pc.list_value_length(column).to_pylist())
    if len(lengths) != 1:
        raise BadDataError(f"list column {name!r} has lists of different lengths {sorted(lengths)[:5]}")
    flat = pc.list_flatten(column)
    if flat.null_count:
        raise BadDataError(f"list column {name!r} has {flat.null_count} missing elements")
    return np.asarray(flat.to_numpy(), dtype=np.float32).reshape(len(column), lengths.pop())


def feature_matrix(
    table: pa.Table, target_column: str, excluded: frozenset[str] = frozenset()
) -> tuple[FloatMatrix, list[str]]:
    """All columns but the target (and ``excluded``) as one float32 matrix, one name per matrix column."""
    blocks: list[FloatMatrix] = []
    names: list[str] = []
    for name in table.column_names:
        if name == target_column or name in excluded:
            continue
        column = table.column(name)
        if _is_numeric(column.type):
            blocks.append(_scalar_column(column, name))
            names.append(name)
        elif _is_numeric_list(column.type):
            block = _list_column(column, name)
            blocks.append(block)
            names.extend(f"{name}[{i}]" for i in range(block.shape[1]))
        else:
            raise BadDataError(
                f"feature column {name!r} has type {column.type}; the built-in trainer takes numeric columns"
                " and lists of numbers"
            )
    if not blocks:
        raise BadDataError(f"no feature columns besides the target {target_column!r}")
    x = np.concatenate(blocks, axis=1)
    if not np.isfinite(x).all():
        raise BadDataError("the features hold NaN or infinite values")
    return x, names


def encode_target(
    column: pa.ChunkedArray, task: Task, target_column: str
) -> tuple[npt.NDArray[Any], list[Any]]:
    """Class indices 0..k-1 and the sorted class values, or float64 targets for regression."""
    if column.null_count:
        raise BadDataError(f"target column {target_column!r} has {column.null_count} missing values")
    if task == "regression":
        if not _is_numeric(column.type):
            raise BadDataError(f"regression needs a numeric target; {target_column!r} has type {column.type}")
        return column.to_numpy().astype(np.float64), []
    values = column.to_pylist()
    classes = sorted(set(values))
    if len(classes) < 2:
        raise BadDataError(f"classification needs at least 2 classes in {target_column!r}; found {classes}")
    index = {value: i for i, value in enumerate(classes)}
    return np.array([index[value] for value in values], dtype=np.int64), classes


def sensitive_values(table: pa.Table, attributes: list[str]) -> npt.NDArray[np.str_]:
    """The sensitive columns as text, [rows, attributes]; a missing value is the group MISSING."""
    absent = [name for name in attributes if name not in table.column_names]
    if absent:
        raise BadDataError(f"sensitive attributes {absent} not in the dataset; columns: {table.column_names}")
    columns = [
        [MISSING if value is None else str(value) for value in table.column(name).to_pylist()]
        for name in attributes
    ]
    return np.array(columns, dtype=np.str_).T.reshape(table.num_rows, len(attributes))


def build_features(
    table: pa.Table, target_column: str, task: Task, sensitive: list[str] | None = None
) -> Features:
    if target_column not in table.column_names:
        raise BadDataError(
            f"target column {target_column!r} not in the dataset; columns: {table.column_names}"
        )
    groups = sensitive_values(table, sensitive) if sensitive else None
    x, names = feature_matrix(table, target_column, frozenset(sensitive or ()))
    y, classes = encode_target(table.column(target_column), task, target_column)
    return Features(x=x, y=y, feature_names=names, classes=classes, sensitive=groups)
