"""Profiles: stored once, read back identical, rebuilt when the reference or settings change."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kubeloop_drift.check import obtain_profile
from kubeloop_drift.profile import CategoricalProfile, NumericProfile, ProfileSettings
from kubeloop_drift.profile_store import (
    PROFILE_SUFFIX,
    decode_profile,
    encode_profile,
    load_profile,
    profile_uri_for,
)
from kubeloop_drift.progress import Progress

from .builders import mixed_table, profile_of

pytestmark = pytest.mark.unit


def test_round_trip_keeps_every_field_and_array() -> None:
    table = mixed_table(3000, seed=1).append_column("when", pa.array(np.zeros(3000, dtype="datetime64[ms]")))
    original = profile_of(table, ProfileSettings(max_sorted_values=1000, max_categories=3))
    restored = decode_profile(encode_profile(original))
    assert restored.settings == original.settings
    assert (
        restored.unsupported
        == original.unsupported
        == {"when": "type timestamp[ms] is neither numeric nor categorical"}
    )
    assert list(restored.columns) == list(original.columns)
    for name, column in original.columns.items():
        back = restored.columns[name]
        assert type(back) is type(column)
        if isinstance(column, NumericProfile):
            assert isinstance(back, NumericProfile)
            assert (back.dtype, back.count, back.distinct, back.mean, back.std) == (
                column.dtype,
                column.count,
                column.distinct,
                column.mean,
                column.std,
            )
            for array in ("sorted_values", "bin_edges", "bin_counts", "plot_edges", "plot_counts"):
                np.testing.assert_array_equal(getattr(back, array), getattr(column, array))
                assert getattr(back, array).dtype == getattr(column, array).dtype
        else:
            assert isinstance(back, CategoricalProfile) and isinstance(column, CategoricalProfile)
            assert back.categories == column.categories
            np.testing.assert_array_equal(back.category_counts, column.category_counts)


def test_large_reference_keeps_a_sketch_and_pooled_tail() -> None:
    profile = profile_of(mixed_table(3000, seed=2), ProfileSettings(max_sorted_values=1000, max_categories=2))
    age = profile.columns["age"]
    city = profile.columns["city"]
    assert isinstance(age, NumericProfile) and isinstance(city, CategoricalProfile)
    assert (age.count, age.sorted_values.size, age.sorted_is_complete) == (3000, 1000, False)
    assert city.categories[-1] == "(other)" and len(city.categories) == 3
    assert city.category_counts.sum() == 3000


def test_profile_locations() -> None:
    assert profile_uri_for("s3://b/ref/") == "s3://b/ref" + PROFILE_SUFFIX
    assert profile_uri_for("/data/ref.parquet", "/cache/p.npz") == "/cache/p.npz"
    in_folder = profile_uri_for("s3://b/ref.parquet", "s3://cache/")
    assert in_folder.startswith("s3://cache/ref.parquet-") and in_folder.endswith(PROFILE_SUFFIX)
    assert in_folder != profile_uri_for("s3://other/ref.parquet", "s3://cache/")


def test_cached_then_stale_when_the_reference_changes(tmp_path: Path) -> None:
    reference = tmp_path / "ref.parquet"
    pq.write_table(mixed_table(500, seed=3), reference)
    progress = Progress(quiet=True)
    first = obtain_profile(str(reference), None, progress)
    assert (first.cached, first.stored) == (False, True)
    assert Path(first.uri) == tmp_path / ("ref.parquet" + PROFILE_SUFFIX)
    second = obtain_profile(str(reference), None, progress)
    assert second.cached and second.profile.fingerprint == first.profile.fingerprint
    pq.write_table(mixed_table(700, seed=4), reference)
    os.utime(reference, ns=(1, 1_000_000_000))  # a new mtime even on coarse clocks
    third = obtain_profile(str(reference), None, progress)
    assert not third.cached
    assert third.profile.rows == 700
    assert load_profile(third.uri) is not None and load_profile(third.uri).rows == 700  # type: ignore[union-attr]


def test_changed_settings_rebuild(tmp_path: Path) -> None:
    reference = tmp_path / "ref.parquet"
    pq.write_table(mixed_table(300, seed=5), reference)
    progress = Progress(quiet=True)
    obtain_profile(str(reference), None, progress)
    rebuilt = obtain_profile(str(reference), None, progress, settings=ProfileSettings(quantile_bins=20))
    assert not rebuilt.cached


def test_corrupt_profile_is_ignored_and_replaced(tmp_path: Path) -> None:
    reference = tmp_path / "ref.parquet"
    pq.write_table(mixed_table(300, seed=6), reference)
    cache = tmp_path / "cache" / "profile.npz"
    cache.parent.mkdir()
    cache.write_bytes(b"not a profile")
    outcome = obtain_profile(str(reference), str(cache), Progress(quiet=True))
    assert (outcome.cached, outcome.stored) == (False, True)
    assert decode_profile(cache.read_bytes()).rows == 300


def test_unwritable_profile_location_is_not_fatal(tmp_path: Path) -> None:
    reference = tmp_path / "ref.parquet"
    pq.write_table(mixed_table(300, seed=7), reference)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    outcome = obtain_profile(str(reference), str(blocker / "sub"), Progress(quiet=True))
    assert not outcome.stored
    assert outcome.profile.rows == 300
