"""Arrow columns to NumPy values and category counts; missing values counted, never a crash."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from kubeloop_drift.columns import category_counts, choose_working_dtype, column_kind, numeric_values

pytestmark = pytest.mark.unit


def test_column_kinds() -> None:
    assert column_kind(pa.float32()) == "numeric"
    assert column_kind(pa.int8()) == "numeric"
    assert column_kind(pa.decimal128(10, 2)) == "numeric"
    assert column_kind(pa.string()) == "categorical"
    assert column_kind(pa.large_string()) == "categorical"
    assert column_kind(pa.bool_()) == "categorical"
    assert column_kind(pa.dictionary(pa.int32(), pa.string())) == "categorical"
    assert column_kind(pa.timestamp("ms")) is None
    assert column_kind(pa.list_(pa.float32())) is None


def test_numeric_missing_values_are_counted_and_dropped() -> None:
    column = pa.chunked_array([[1.0, None, float("nan")], [float("inf"), 2.0, -float("inf"), 3.0]])
    values, missing = numeric_values(column, "float32")
    assert values.dtype == np.float32
    assert sorted(values.tolist()) == [1.0, 2.0, 3.0]
    assert missing == 4


def test_all_missing_numeric_column() -> None:
    values, missing = numeric_values(pa.array([None, None], type=pa.float64()), "float64")
    assert values.size == 0
    assert missing == 2


def test_integer_column_with_nulls() -> None:
    values, missing = numeric_values(pa.array([1, None, 3], type=pa.int64()), "float64")
    assert values.tolist() == [1.0, 3.0]
    assert missing == 1
    values[0] = 5.0  # the array is writable: the engine sorts it in place


def test_category_counts_most_frequent_first_nulls_missing() -> None:
    counts = category_counts(pa.chunked_array([["b", "a", None, "b"], ["c", "b", ""]]))
    assert counts.labels == ["b", "a", "c", ""]
    assert counts.counts.tolist() == [3, 1, 1, 1]
    assert counts.missing == 1


def test_category_counts_of_dictionary_and_boolean_columns() -> None:
    dictionary = pa.array(["x", "y", "x", None]).dictionary_encode()
    counts = category_counts(dictionary)
    assert (counts.labels, counts.counts.tolist(), counts.missing) == (["x", "y"], [2, 1], 1)
    booleans = category_counts(pa.array([True, False, True]))
    assert (booleans.labels, booleans.counts.tolist()) == (["true", "false"], [2, 1])


def test_working_dtype_keeps_float64_where_float32_would_blur() -> None:
    assert choose_working_dtype(5.0, std=1.0, integer_type=False) == "float32"
    assert choose_working_dtype(1.7e9, std=1e3, integer_type=False) == "float64"  # spacing 128 > 0.1
    assert choose_working_dtype(2.0**24, std=1.0, integer_type=True) == "float32"
    assert choose_working_dtype(2.0**24 + 1, std=1e6, integer_type=True) == "float64"
    assert choose_working_dtype(3.0, std=0.0, integer_type=False) == "float64"  # constant: exact values
