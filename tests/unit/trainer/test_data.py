"""Reading datasets by URI, turning tables into features, and splitting rows reproducibly."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from kubeloop_trainer.dataset import load_dataset
from kubeloop_trainer.errors import BadDataError, InvalidSpecError
from kubeloop_trainer.features import build_features
from kubeloop_trainer.splits import shard, split_rows
from tests.fixtures.http_server import http_server
from tests.unit.trainer.builders import blobs, images, write_csv, write_parquet

pytestmark = pytest.mark.unit


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving ``tmp_path``."""
    with http_server(partial(SimpleHTTPRequestHandler, directory=str(tmp_path))) as url:
        yield url, tmp_path


def test_csv_and_parquet_read_alike_with_fingerprint(tmp_path: Path) -> None:
    table = blobs(n_rows=50)
    csv = write_csv(table, tmp_path / "data.csv")
    parquet = write_parquet(table, tmp_path / "data.parquet")
    from_csv, from_parquet = load_dataset(f"file://{csv}"), load_dataset(str(parquet))
    assert from_csv.table.num_rows == from_parquet.table.num_rows == 50
    assert from_csv.fingerprint.sha256 == hashlib.sha256(csv.read_bytes()).hexdigest()
    assert from_parquet.fingerprint.rows == 50
    assert from_csv.fingerprint.sha256 != from_parquet.fingerprint.sha256


def test_dataset_over_http(http_folder: tuple[str, Path]) -> None:
    base_url, folder = http_folder
    write_parquet(blobs(n_rows=30), folder / "served.parquet")
    loaded = load_dataset(f"{base_url}/served.parquet")
    assert loaded.table.num_rows == 30
    with pytest.raises(BadDataError, match=r"dataset not found|cannot fetch"):
        load_dataset(f"{base_url}/missing.parquet")


def test_declared_format_overrides_extension(tmp_path: Path) -> None:
    path = write_csv(blobs(n_rows=10), tmp_path / "export.txt")
    with pytest.raises(BadDataError, match=r"set dataset\.format"):
        load_dataset(str(path))
    assert load_dataset(str(path), "csv").table.num_rows == 10


def test_garbage_is_bad_data(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,2\n3,4,5,6\n")
    with pytest.raises(BadDataError, match="cannot read"):
        load_dataset(str(path))


def test_features_from_numbers_and_list_columns() -> None:
    table = images(n_rows=6, side=4).append_column("age", pa.array([1, 2, 3, 4, 5, 6], pa.int32()))
    features = build_features(table, "label", "classification")
    assert features.x.shape == (6, 17) and features.x.dtype == np.float32
    assert features.feature_names[:2] == ["pixels[0]", "pixels[1]"] and features.feature_names[-1] == "age"
    assert features.classes == [0, 1]


def test_string_labels_are_encoded_in_sorted_order() -> None:
    features = build_features(blobs(n_rows=30, n_classes=3), "label", "classification")
    assert features.classes == ["class_0", "class_1", "class_2"]
    assert set(features.y.tolist()) == {0, 1, 2}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({"x": [1.0, None], "label": [0, 1]}), "'x' has 1 missing values"),
        (pa.table({"x": [1.0, 2.0], "label": [0, None]}), "target column 'label' has 1 missing"),
        (pa.table({"x": [1.0, 2.0], "label": [1, 1]}), "at least 2 classes"),
        (pa.table({"x": [[1.0], [1.0, 2.0]], "label": [0, 1]}), "lists of different lengths"),
        (pa.table({"x": [1.0, float("inf")], "label": [0, 1]}), "NaN or infinite"),
        (pa.table({"label": [0, 1]}), "no feature columns"),
    ],
)
def test_unusable_tables_are_bad_data(table: pa.Table, message: str) -> None:
    with pytest.raises(BadDataError, match=message):
        build_features(table, "label", "classification")


def test_split_is_seeded_disjoint_and_stratified() -> None:
    y = np.array([0] * 80 + [1] * 20)
    first, again = split_rows(100, y, 0.2, 0.2, seed=4), split_rows(100, y, 0.2, 0.2, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(vars(first).values(), vars(again).values(), strict=True))
    assert (len(first.train), len(first.validation), len(first.test)) == (60, 20, 20)
    assert set(first.train) | set(first.validation) | set(first.test) == set(range(100))
    assert np.mean(y[first.test]) == pytest.approx(0.2)
    other = split_rows(100, y, 0.2, 0.2, seed=5)
    assert not np.array_equal(first.test, other.test)


def test_split_refuses_what_cannot_work() -> None:
    with pytest.raises(InvalidSpecError):
        split_rows(100, None, 0.5, 0.5, seed=0)
    with pytest.raises(BadDataError, match="too few"):
        split_rows(2, None, 0.2, 0.2, seed=0)


def test_shards_are_equal_sized_and_cover_every_row() -> None:
    shards = [shard(10, rank, 3, seed=1, epoch=2) for rank in range(3)]
    assert {len(s) for s in shards} == {4}
    assert set(np.concatenate(shards)) == set(range(10))
    assert not np.array_equal(shard(10, 0, 3, seed=1, epoch=3), shards[0])


def test_dataset_from_s3(s3: Any, tmp_path: Path) -> None:
    """s3:// through s3fs against a local S3 stand-in (moto), one file and a prefix of parts."""
    fs = s3
    fs.mkdir("datasets")
    table = blobs(n_rows=60)
    whole = write_parquet(table, tmp_path / "whole.parquet").read_bytes()
    fs.pipe("datasets/whole.parquet", whole)
    for part in range(2):
        fs.pipe(
            f"datasets/parts/p{part}.csv",
            write_csv(table.slice(part * 30, 30), tmp_path / f"{part}.csv").read_bytes(),
        )
    one = load_dataset("s3://datasets/whole.parquet")
    parts = load_dataset("s3://datasets/parts")
    assert one.table.num_rows == parts.table.num_rows == 60
    assert one.fingerprint.sha256 == hashlib.sha256(whole).hexdigest()
    assert parts.fingerprint.files == 2
