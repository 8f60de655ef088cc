"""Background (reference) rows for explanations: a Parquet/CSV file or folder, sampled once at load."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from kubeloop.contracts.datasets import data_files, data_format
from kubeloop_serving.explain.errors import ExplainerUnavailableError

SEED = 0


def read_table(uri: str) -> pa.Table:
    """Every data file at ``uri`` (one file, or a folder by the dataset contract) as one table."""
    fs, path = url_to_fs(uri)
    files = [path] if not fs.isdir(path) else data_files(path, [str(p) for p in fs.find(path)])
    if not files:
        raise ExplainerUnavailableError(f"no Parquet or CSV files at {uri}")
    tables = []
    for file in files:
        kind = data_format(file)
        if kind is None:
            raise ExplainerUnavailableError(f"{file} is neither Parquet nor CSV (by its name)")
        with fs.open(file, "rb", compression="infer" if kind == "csv" else None) as handle:
            tables.append(pq.read_table(handle) if kind == "parquet" else pacsv.read_csv(handle))
    return pa.concat_tables(tables, promote_options="permissive")


def feature_matrix(table: pa.Table, feature_names: Sequence[str] | None, n_features: int) -> npt.NDArray[Any]:
    """[rows, n_features] float32: the named columns, else the first ``n_features`` numeric ones."""
    if feature_names is not None and len(feature_names) == n_features:
        missing = [name for name in feature_names if name not in table.column_names]
        if missing:
            raise ExplainerUnavailableError(f"the background data lacks the model's features {missing}")
        columns = list(feature_names)
    else:
        columns = [
            f.name for f in table.schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
        ]
        if len(columns) < n_features:
            raise ExplainerUnavailableError(
                f"the background data has {len(columns)} numeric columns; the model takes {n_features}"
            )
        columns = columns[:n_features]
    arrays = [pc.cast(table.column(name), pa.float32()).to_numpy(zero_copy_only=False) for name in columns]
    return np.column_stack(arrays).astype(np.float32) if arrays else np.zeros((table.num_rows, 0), np.float32)


def sample_rows(x: npt.NDArray[Any], rows: int, seed: int = SEED) -> npt.NDArray[Any]:
    """At most ``rows`` rows of ``x`` drawn without replacement (reproducibly), in their order."""
    if len(x) == 0:
        raise ExplainerUnavailableError("the background data has no rows")
    if len(x) <= rows:
        return x
    chosen = np.sort(np.random.default_rng(seed).choice(len(x), size=rows, replace=False))
    return x[chosen]


def load_background(
    uri: str, feature_names: Sequence[str] | None, n_features: int, rows: int
) -> npt.NDArray[Any]:
    """The background sample the explainers average over."""
    try:
        table = read_table(uri)
    except ExplainerUnavailableError:
        raise
    except Exception as error:
        raise ExplainerUnavailableError(
            f"cannot read background data from {uri}: {type(error).__name__}: {error}"
        ) from error
    return sample_rows(feature_matrix(table, feature_names, n_features), rows)
