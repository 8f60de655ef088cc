"""Which files of a dataset folder are data: the one rule the trainer and the drift check share.

A dataset is one file, or a folder of files found recursively. In a folder, an entry whose path has
any part starting with ``.`` or ``_`` is skipped (``_SUCCESS``, ``_temporary/``, ``.partial`` files,
as Spark and pyarrow do), and so is any file without a known data suffix.
"""

from __future__ import annotations

from typing import Literal

DataFormat = Literal["parquet", "csv"]
FORMAT_BY_SUFFIX: dict[str, DataFormat] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".parq": "parquet",
    ".csv": "csv",
    ".csv.gz": "csv",
}


def data_format(path: str) -> DataFormat | None:
    """Parquet or CSV by file name, None for anything else."""
    lowered = path.lower()
    for suffix, found in FORMAT_BY_SUFFIX.items():
        if lowered.endswith(suffix):
            return found
    return None


def visible(relative_path: str) -> bool:
    """False for hidden or ``_``-prefixed entries (at any depth below the dataset folder)."""
    return not any(part.startswith((".", "_")) for part in relative_path.strip("/").split("/"))


def is_data_file(folder: str, path: str) -> bool:
    """Whether ``path``, found under the dataset folder ``folder``, is one of its data files."""
    relative = path[len(folder.rstrip("/")) + 1 :] if path.startswith(folder.rstrip("/") + "/") else path
    return visible(relative) and data_format(path) is not None


def data_files(folder: str, found: list[str]) -> list[str]:
    """The data files among ``found`` (paths listed recursively under ``folder``), sorted."""
    return sorted(path for path in found if is_data_file(folder, path))
