"""Read a Parquet or CSV dataset by URI (path, file://, s3://, http(s)://) and fingerprint its bytes."""

from __future__ import annotations

import gzip
import hashlib
import io
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from kubeloop.contracts.datasets import DataFormat, data_files, data_format
from kubeloop_trainer.errors import BadDataError


@dataclass(frozen=True)
class DatasetFingerprint:
    """What was trained on: sha256 over every file's bytes (in path order) and the row count."""

    uri: str
    sha256: str
    rows: int
    files: int


@dataclass(frozen=True)
class LoadedDataset:
    table: pa.Table
    fingerprint: DatasetFingerprint


def format_of(path: str, declared: DataFormat | None) -> DataFormat:
    """The declared format, else the one the file extension names."""
    found = declared or data_format(path)
    if found is not None:
        return found
    raise BadDataError(f"cannot tell the format of {path!r} from its extension; set dataset.format")


def parse_table(data: bytes, data_format: DataFormat, name: str) -> pa.Table:
    """Bytes of one file as an Arrow table; unreadable bytes are BadData."""
    try:
        if data_format == "parquet":
            return pq.read_table(io.BytesIO(data))
        if name.lower().endswith(".gz"):
            data = gzip.decompress(data)
        return pa_csv.read_csv(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError, EOFError) as error:
        raise BadDataError(f"cannot read {name} as {data_format}: {error}") from error


def fingerprint_of(uri: str, contents: list[bytes], rows: int) -> DatasetFingerprint:
    digest = hashlib.sha256()
    for data in contents:
        digest.update(data)
    return DatasetFingerprint(uri=uri, sha256=digest.hexdigest(), rows=rows, files=len(contents))


def concat_tables(tables: list[pa.Table], uri: str) -> pa.Table:
    try:
        return pa.concat_tables(tables, promote_options="default")
    except (pa.ArrowException, ValueError) as error:
        raise BadDataError(f"the files of {uri} do not share one schema: {error}") from error


def _files_of(fs: Any, path: str, declared: DataFormat | None) -> list[str]:
    """The data files at ``path``: the file itself, or a folder's data files (of the declared format)."""
    if not fs.isdir(path):
        return [path]
    found = [p for p in data_files(path, fs.find(path)) if declared is None or data_format(p) == declared]
    if not found:
        raise BadDataError(f"no {declared or 'parquet/csv'} files under {path}")
    return found


def read_dataset(fs: Any, path: str, uri: str, declared: DataFormat | None = None) -> LoadedDataset:
    """Every data file at ``path`` of the filesystem ``fs`` (any fsspec filesystem: local, S3, DVC,
    lakeFS), fingerprinted under the name ``uri``; anything missing or unreadable is BadData."""
    try:
        files = _files_of(fs, path, declared)
        contents = [fs.cat_file(file) for file in files]
    except FileNotFoundError as error:
        raise BadDataError(f"dataset not found: {uri}") from error
    except BadDataError:
        raise
    except Exception as error:  # any failure to fetch (network, credentials, protocol) is the data's
        raise BadDataError(f"cannot fetch dataset {uri}: {type(error).__name__}: {error}") from error
    tables = [
        parse_table(data, format_of(file, declared), file) for file, data in zip(files, contents, strict=True)
    ]
    table = concat_tables(tables, uri)
    if table.num_rows == 0:
        raise BadDataError(f"dataset {uri} has no rows")
    return LoadedDataset(table=table, fingerprint=fingerprint_of(uri, contents, table.num_rows))


def load_dataset(uri: str, declared: DataFormat | None = None) -> LoadedDataset:
    """Read every file of the dataset at ``uri`` (a path, file://, s3://, http(s)://)."""
    try:
        fs, path = fsspec.core.url_to_fs(uri.removeprefix("file://") if uri.startswith("file://") else uri)
    except Exception as error:  # an unknown protocol or a missing filesystem package
        raise BadDataError(f"cannot fetch dataset {uri}: {type(error).__name__}: {error}") from error
    return read_dataset(fs, path, uri, declared)
