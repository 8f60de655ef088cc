from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from kubeloop_serving.payload_table import FeatureNaming, PayloadRecord, payload_table, row_count

pytestmark = pytest.mark.unit

NAMING = FeatureNaming("x", ("age", "income"))


def record(
    x: np.ndarray, request_id: str = "r1", at: int = 1_700_000_000_000, **outputs: np.ndarray
) -> PayloadRecord:
    return PayloadRecord(at, request_id, "3", {"x": x}, outputs)


def test_tabular_rows_use_feature_names_and_output_columns() -> None:
    rec = record(
        np.array([[1, 2], [3, 4]], np.float32),
        scores=np.array([[0.1, 0.9], [0.8, 0.2]], np.float32),
        label=np.array([1, 0], np.int64),
    )
    table = payload_table("churn", [rec], NAMING)
    assert table.column_names == [
        "_timestamp",
        "_request_id",
        "_row",
        "_model",
        "_version",
        "_track",
        "age",
        "income",
        "_output.scores.0",
        "_output.scores.1",
        "_output.label",
    ]
    assert table.schema.field("_timestamp").type == pa.timestamp("ms", tz="UTC")
    assert table.column("income").to_pylist() == [2, 4]
    assert table.column("_output.label").to_pylist() == [1, 0]
    assert table.column("_request_id").to_pylist() == ["r1", "r1"]
    assert table.column("_row").to_pylist() == [0, 1]
    assert table.column("_model").to_pylist() == ["churn", "churn"]
    assert table.column("_version").to_pylist() == ["3", "3"]
    assert table.column("_track").to_pylist() == ["stable", "stable"]


def test_without_feature_names_columns_are_numbered() -> None:
    table = payload_table("m", [record(np.zeros((1, 3), np.float64), y=np.zeros(1))], FeatureNaming())
    assert table.column_names[6:] == ["x_0", "x_1", "x_2", "_output.y"]


def test_other_ranks_become_list_columns() -> None:
    image = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)
    rec = PayloadRecord(0, "r", "1", {"image": image, "ids": np.array([7, 8])}, {"emb": np.ones((2, 2, 2))})
    table = payload_table("m", [rec], FeatureNaming())
    assert table.column("image").to_pylist() == [list(range(6)), list(range(6, 12))]
    assert table.column("ids").to_pylist() == [7, 8]
    assert table.column("_output.emb").to_pylist() == [[1.0] * 4, [1.0] * 4]


def test_many_records_concatenate_in_order() -> None:
    records = [
        record(np.full((n, 2), n, np.float32), request_id=f"r{n}", at=1000 * n, y=np.full(n, n, np.int64))
        for n in (1, 2, 3)
    ]
    table = payload_table("m", records, NAMING)
    assert table.num_rows == 6
    assert table.column("_request_id").to_pylist() == ["r1", "r2", "r2", "r3", "r3", "r3"]
    assert [t.timestamp() for t in table.column("_timestamp").to_pylist()] == [1, 2, 2, 3, 3, 3]


def test_row_count() -> None:
    assert row_count({"a": np.zeros((5, 2)), "b": np.zeros(5)}) == 5
    assert row_count({"a": np.zeros((5, 2)), "b": np.zeros(4)}) == 1
    assert row_count({"a": np.zeros(())}) == 1


def test_strings_and_half_floats_are_stored() -> None:
    rec = PayloadRecord(
        0, "r", "1", {"text": np.array(["a", "b"], dtype=object)}, {"h": np.ones(2, np.float16)}
    )
    table = payload_table("m", [rec], FeatureNaming())
    assert table.column("text").to_pylist() == ["a", "b"]
    assert table.schema.field("_output.h").type == pa.float32()


def test_shadow_rows_carry_their_track_and_agreement_after_the_outputs() -> None:
    stable = record(np.zeros((2, 2), np.float32), y=np.zeros(2))
    agrees = np.array([True, False, True])
    shadow = PayloadRecord(
        0, "r2", "4", {"x": np.ones((3, 2), np.float32)}, {"y": np.ones(3)}, "shadow", agrees
    )
    table = payload_table("m", [stable, shadow], NAMING)
    assert table.column_names[-1] == "_agrees"
    assert table.column("_track").to_pylist() == ["stable"] * 2 + ["shadow"] * 3
    assert table.column("_agrees").to_pylist() == [None, None, True, False, True]


def test_sensitive_attributes_become_string_columns_after_everything_else() -> None:
    with_sex = PayloadRecord(
        0, "r1", "1", {"x": np.ones((2, 2), np.float32)}, {"y": np.ones(2)},
        attributes={"sex": ("f", None), "age_band": ("<30", "30+")},
    )  # fmt: skip
    without = record(np.zeros((1, 2), np.float32), request_id="r2", y=np.zeros(1))
    table = payload_table("m", [with_sex, without], NAMING)
    assert table.column_names[-2:] == ["_attribute.sex", "_attribute.age_band"]
    assert table.schema.field("_attribute.sex").type == pa.string()
    assert table.column("_attribute.sex").to_pylist() == ["f", None, None]
    assert table.column("_attribute.age_band").to_pylist() == ["<30", "30+", None]
    assert table.column("_row").to_pylist() == [0, 1, 0]
