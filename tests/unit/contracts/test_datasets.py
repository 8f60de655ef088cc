"""Trainer and drift check: the same files of a dataset folder are its data."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from kubeloop_drift.sources import read_table, resolve_source
from kubeloop_trainer.dataset import load_dataset

pytestmark = pytest.mark.unit
DATA = ["a.parquet", "b.parq", "c.pq", "nested/d.parquet"]
SKIPPED = ["_SUCCESS", ".e.parquet.partial", "_temporary/f.parquet", ".hidden/g.parquet", "notes.txt"]


def write(folder: Path, names: list[str]) -> None:
    for index, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"x": [float(index)] * (index + 1)}), path)


def test_trainer_and_drift_take_the_same_parquet_files(tmp_path: Path) -> None:
    write(tmp_path, [*DATA, *SKIPPED])
    source = resolve_source(str(tmp_path))
    assert sorted(Path(f.path).relative_to(tmp_path).as_posix() for f in source.files) == sorted(DATA)
    trained = load_dataset(str(tmp_path))
    assert trained.fingerprint.files == len(DATA)
    assert trained.table.num_rows == sum(range(1, len(DATA) + 1))
    assert read_table(source, ["x"]).num_rows == trained.table.num_rows


def test_both_read_gzipped_csv(tmp_path: Path) -> None:
    for name, rows in (("part-0.csv.gz", 2), ("part-1.csv", 3)):
        buffer = pa.BufferOutputStream()
        pacsv.write_csv(pa.table({"x": list(range(rows))}), buffer)
        data = buffer.getvalue().to_pybytes()
        (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    source = resolve_source(str(tmp_path))
    assert len(source.files) == 2 and source.format == "csv"
    assert load_dataset(str(tmp_path)).table.num_rows == 5
    assert read_table(source, ["x"]).num_rows == 5
