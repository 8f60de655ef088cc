"""Server -> drift check: what the server's payload logger writes, the drift check reads."""

from __future__ import annotations

import time
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pytest

from kubeloop.contracts.payload_log import (
    MODEL_COLUMN,
    REQUEST_ID_COLUMN,
    TIMESTAMP_COLUMN,
    TRACK_COLUMN,
    partition_dir,
    write_payload_file,
)
from kubeloop_drift.payload_log import payload_window
from kubeloop_serving.payload import PayloadLogger
from kubeloop_serving.payload_table import FeatureNaming, PayloadRecord, payload_table

pytestmark = pytest.mark.unit


def test_the_drift_check_reads_what_the_server_wrote(tmp_path: Path) -> None:
    written: list[int] = []
    logger = PayloadLogger(
        str(tmp_path),
        "churn",
        FeatureNaming("x", ("age", "income")),
        queue_size=10,
        flush_rows=2,
        flush_seconds=60,
        on_written=written.append,
        on_dropped=lambda _: None,
    )
    logger.start()
    now = time.time_ns() // 1_000_000
    for index in range(3):
        inputs = {"x": np.array([[30.0 + index, 1000.0 * index]], np.float32)}
        outputs = {"score": np.array([0.5], np.float32)}
        logger.submit(PayloadRecord(now + index, f"r{index}", "7", inputs, outputs))
    logger.close(timeout=30)
    assert sum(written) == 3
    (tmp_path / "churn" / "_SUCCESS").write_text("")  # not a partition: ignored
    window = payload_window(str(tmp_path), "churn", duration="1h")
    table = window.read(["age", "income", REQUEST_ID_COLUMN, MODEL_COLUMN]).sort_by(TIMESTAMP_COLUMN)
    assert table.column("age").to_pylist() == [30.0, 31.0, 32.0]
    assert table.column(REQUEST_ID_COLUMN).to_pylist() == ["r0", "r1", "r2"]
    assert set(table.column(MODEL_COLUMN).to_pylist()) == {"churn"}
    assert window.description["files"] >= 1


def test_files_written_before_the_track_column_read_with_newer_ones(tmp_path: Path) -> None:
    now = time.time_ns() // 1_000_000
    directory = partition_dir(str(tmp_path), "churn", now)
    new = payload_table(
        "churn",
        [PayloadRecord(now, "new", "8", {"x": np.ones((2, 1), np.float32)}, {"y": np.ones(2)}, "canary")],
        FeatureNaming("x", ("age",)),
    )
    old = new.drop_columns([TRACK_COLUMN]).set_column(1, "_request_id", pa.array(["old", "old"]))
    filesystem = fsspec.filesystem("file")
    write_payload_file(filesystem, directory, old, now - 1)
    write_payload_file(filesystem, directory, new, now)
    table = payload_window(str(tmp_path), "churn", duration="1h").read(
        ["age", TRACK_COLUMN, REQUEST_ID_COLUMN]
    )
    tracks = dict(
        zip(table.column(REQUEST_ID_COLUMN).to_pylist(), table.column(TRACK_COLUMN).to_pylist(), strict=True)
    )
    assert tracks == {"old": None, "new": "canary"}
    assert table.column("age").to_pylist() == [1.0] * 4
