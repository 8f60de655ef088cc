"""Server -> drift check: what the server's payload logger writes, the drift check reads."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from kubeloop.contracts.payload_log import MODEL_COLUMN, REQUEST_ID_COLUMN, TIMESTAMP_COLUMN
from kubeloop_drift.payload_log import payload_window
from kubeloop_serving.payload import PayloadLogger
from kubeloop_serving.payload_table import FeatureNaming, PayloadRecord

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
