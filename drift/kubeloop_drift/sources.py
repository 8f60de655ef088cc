"""Where data comes from: local paths, file:// and s3:// URIs (fsspec), read file by file.

A source is one Parquet or CSV file, or a folder of them (which files count:
kubeloop.contracts.datasets). Files are read with ``pyarrow.parquet`` / ``pyarrow.csv`` and
concatenated (a column a file lacks becomes nulls there); ``pyarrow.dataset`` is not used, as
importing it imports pandas when installed (most of a second). Every failure to list, open or
parse becomes an ``UnreadableInputError`` with a one-line message.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from kubeloop.contracts.datasets import DataFormat, data_files, data_format
from kubeloop_drift.errors import UnreadableInputError

__all__ = ["DataFormat", "data_format"]


@dataclass(frozen=True)
class DataFile:
    """One file of a source, with what identifies its version without reading it."""

    path: str
    size: int
    version: str


@dataclass(frozen=True)
class DataSource:
    """A resolved URI: its filesystem and the data files under it."""

    uri: str
    filesystem: Any
    files: tuple[DataFile, ...]
    format: DataFormat

    def fingerprint(self) -> str:
        """sha256 over every file's path, size and version (mtime or ETag): cheap, no data read."""
        listing = [[f.path, f.size, f.version] for f in self.files]
        return hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()


def filesystem_for(uri: str) -> tuple[Any, str]:
    """The fsspec filesystem and the path within it, for a path or a file:// / s3:// URI."""
    try:
        filesystem, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError, OSError) as error:
        raise UnreadableInputError(f"cannot open {uri}: {one_line(error)}") from error
    return filesystem, str(path)


def arrow_filesystem(filesystem: Any) -> pafs.FileSystem:
    """pyarrow's native local filesystem where possible (faster), else fsspec wrapped."""
    if isinstance(filesystem, LocalFileSystem):
        return pafs.LocalFileSystem()
    return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem))


def file_version(info: dict[str, Any]) -> str:
    """What changes when a file is rewritten: the ETag on object stores, else the mtime."""
    for key in ("ETag", "etag", "mtime", "LastModified", "last_modified", "created"):
        if info.get(key) is not None:
            return str(info[key])
    return ""


def resolve_source(uri: str) -> DataSource:
    """List the data files of ``uri`` (a file or a folder of files of one format)."""
    filesystem, path = filesystem_for(uri)
    try:
        info = filesystem.info(path)
        if info.get("type") == "directory":
            found = filesystem.find(path, detail=True)
            entries = [found[name] for name in data_files(path, list(found))]
        else:
            entries = [info]
    except FileNotFoundError as error:
        raise UnreadableInputError(f"{uri}: no such file or folder") from error
    except OSError as error:
        raise UnreadableInputError(f"cannot list {uri}: {one_line(error)}") from error
    if not entries:
        raise UnreadableInputError(f"{uri}: no Parquet or CSV files found")
    formats = {data_format(str(entry["name"])) for entry in entries}
    if None in formats or len(formats) != 1:
        raise UnreadableInputError(f"{uri}: expected Parquet (.parquet) or CSV (.csv) files of one format")
    files = tuple(DataFile(str(e["name"]), int(e.get("size") or 0), file_version(e)) for e in entries)
    found_format = formats.pop()
    assert found_format is not None
    return DataSource(uri=uri, filesystem=filesystem, files=files, format=found_format)


def string_columns(schema: pa.Schema, names: Iterable[str]) -> list[str]:
    """The columns among ``names`` holding strings (categorical features worth reading encoded)."""
    wanted = set(names)
    return [
        f.name
        for f in schema
        if f.name in wanted and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
    ]


def read_files(
    filesystem: Any,
    paths: Iterable[str],
    data_format: DataFormat,
    columns: list[str] | None = None,
    dictionary_columns: Iterable[str] = (),
) -> pa.Table:
    """The given columns of the files, concatenated; string columns in ``dictionary_columns`` come
    dictionary-encoded from Parquet (no string is materialised). Raises UnreadableInputError."""
    native = arrow_filesystem(filesystem)
    tables = []
    for path in paths:
        try:
            tables.append(_read_file(native, path, data_format, columns, set(dictionary_columns)))
        except (OSError, pa.ArrowException) as error:
            raise UnreadableInputError(f"cannot read {path}: {one_line(error)}") from error
    if not tables:
        return pa.table({})
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as error:
        raise UnreadableInputError(f"files with incompatible schemas: {one_line(error)}") from error


def _read_file(
    native: pafs.FileSystem,
    path: str,
    data_format: DataFormat,
    columns: list[str] | None,
    dictionary: set[str],
) -> pa.Table:
    if data_format == "parquet":
        parquet = pq.ParquetFile(path, filesystem=native)
        present = parquet.schema_arrow.names
        encoded = sorted(dictionary.intersection(present))
        if encoded:  # reopen with the footer already read: read_dictionary must name present columns
            parquet = pq.ParquetFile(
                path, filesystem=native, metadata=parquet.metadata, read_dictionary=encoded
            )
        return parquet.read(columns=None if columns is None else [c for c in columns if c in present])
    with native.open_input_stream(path, compression="detect") as stream:
        options = (
            pacsv.ConvertOptions(include_columns=columns, include_missing_columns=True) if columns else None
        )
        table = pacsv.read_csv(stream, convert_options=options)
    return table


def read_schema_of(filesystem: Any, path: str, data_format: DataFormat) -> pa.Schema:
    """The schema of one file (for CSV, as inferred from its first block)."""
    native = arrow_filesystem(filesystem)
    try:
        if data_format == "parquet":
            return pq.read_schema(path, filesystem=native)
        with native.open_input_stream(path, compression="detect") as stream:
            return pacsv.open_csv(stream).schema
    except (OSError, pa.ArrowException) as error:
        raise UnreadableInputError(f"cannot read {path}: {one_line(error)}") from error


def read_table(
    source: DataSource, columns: list[str] | None = None, dictionary_columns: Iterable[str] = ()
) -> pa.Table:
    """The given columns of every file of the source, as one Arrow table."""
    return read_files(
        source.filesystem, [f.path for f in source.files], source.format, columns, dictionary_columns
    )


def read_schema(source: DataSource) -> pa.Schema:
    """The schema of the source (its first file's)."""
    return read_schema_of(source.filesystem, source.files[0].path, source.format)


def one_line(error: BaseException) -> str:
    """An exception as one short line."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."
