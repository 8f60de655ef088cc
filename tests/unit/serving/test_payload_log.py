"""Sampled payloads written as Parquet by the server, read back by the drift check's reader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kubeloop.contracts.payload_log import file_millis
from kubeloop_drift.errors import EmptyInputError
from kubeloop_serving.payload import PayloadLogger
from kubeloop_serving.payload_table import FeatureNaming, PayloadRecord
from tests.unit.serving.conftest import (
    TABULAR_FEATURES,
    logged_rows,
    serve_in_thread,
    tabular_reference,
    wait_for,
)

pytestmark = pytest.mark.unit


def tabular_request(rows: np.ndarray, request_id: str | None = None) -> dict[str, object]:
    document: dict[str, object] = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": list(rows.shape), "data": rows.tolist()}]
    }
    if request_id is not None:
        document["id"] = request_id
    return document


def test_payloads_round_trip_through_parquet(tmp_path: Path, tabular_path: Path) -> None:
    sink = tmp_path / "payloads"
    rng = np.random.default_rng(3)
    batches = [rng.normal(size=(n, 4)).astype(np.float32) for n in (1, 3, 2)]
    before = datetime.now(UTC) - timedelta(seconds=1)
    with serve_in_thread(
        tabular_path,
        model_name="churn",
        model_version="5",
        payload_log_uri=str(sink),
        payload_log_flush_seconds=60,
    ) as server:
        for index, rows in enumerate(batches):
            assert server.infer("churn", tabular_request(rows, f"req-{index}")).status_code == 200
        anonymous = server.infer("churn", tabular_request(batches[0]))
        assert anonymous.status_code == 200
        generated = anonymous.json()["id"]
        assert anonymous.headers["x-request-id"] == generated
    # Shutdown flushed everything (the flush interval was never reached).
    files = list(sink.glob("churn/dt=*/*.parquet"))
    assert len(files) == 1
    assert file_millis(files[0].name) is not None
    assert files[0].parent.name == f"dt={datetime.now(UTC):%Y-%m-%d}"

    table = logged_rows(str(sink), "churn")
    assert table.num_rows == 7
    assert table.column_names[:6] == ["_timestamp", "_request_id", "_row", "_model", "_version", "_track"]
    assert table.column_names[6:10] == list(TABULAR_FEATURES)
    assert table.column_names[10:] == [
        "_output.scores.0",
        "_output.scores.1",
        "_output.scores.2",
        "_output.label",
    ]
    ids = table.column("_request_id").to_pylist()
    assert ids[:6] == ["req-0", "req-1", "req-1", "req-1", "req-2", "req-2"]
    assert ids[6] == generated and len(generated) == 32  # generated when the request has no id
    assert table.column("_row").to_pylist() == [0, 0, 1, 2, 0, 1, 0]
    assert set(table.column("_version").to_pylist()) == {"5"}
    assert set(table.column("_model").to_pylist()) == {"churn"}
    features = np.column_stack([table.column(name).to_numpy() for name in TABULAR_FEATURES])
    sent = np.concatenate([*batches, batches[0]])
    np.testing.assert_array_equal(features, sent)
    scores, label = tabular_reference(sent)
    logged_scores = np.column_stack([table.column(f"_output.scores.{j}").to_numpy() for j in range(3)])
    np.testing.assert_allclose(logged_scores, scores, rtol=1e-6)
    np.testing.assert_array_equal(table.column("_output.label").to_numpy(), label)
    stamps = table.column("_timestamp").to_pylist()
    assert all(before <= stamp <= datetime.now(UTC) for stamp in stamps)

    assert logged_rows(str(sink), "churn", last_rows=1).column("_request_id").to_pylist() == ids[-1:]
    with pytest.raises(EmptyInputError):
        logged_rows(str(sink), "other")


def test_rows_flush_while_serving_and_are_counted(tmp_path: Path, tabular_path: Path) -> None:
    sink = tmp_path / "payloads"
    with serve_in_thread(
        tabular_path, model_name="churn", payload_log_uri=str(sink), payload_log_flush_rows=2
    ) as server:
        server.infer("churn", tabular_request(np.ones((2, 4), np.float32)))
        wait_for(
            lambda: server.metric("kubeloop_serving_payload_log_rows_total", model="churn") == 2, "a flush"
        )
        assert logged_rows(str(sink), "churn").num_rows == 2


def test_a_failing_sink_drops_rows_but_never_fails_requests(tmp_path: Path, tabular_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the sink directory should be")
    with serve_in_thread(
        tabular_path, model_name="churn", payload_log_uri=str(blocker / "sink"), payload_log_flush_rows=1
    ) as server:
        for _ in range(3):
            assert server.infer("churn", tabular_request(np.ones((2, 4), np.float32))).status_code == 200
        dropped = "kubeloop_serving_payload_log_dropped_total"
        wait_for(lambda: server.metric(dropped, model="churn") == 6, "the dropped rows to be counted")
        assert server.metric("kubeloop_serving_payload_log_rows_total", model="churn") == 0


def test_sample_rate_zero_logs_nothing(tmp_path: Path, tabular_path: Path) -> None:
    sink = tmp_path / "payloads"
    with serve_in_thread(
        tabular_path, model_name="churn", payload_log_uri=str(sink), payload_log_sample_rate=0.0
    ) as server:
        assert server.infer("churn", tabular_request(np.ones((1, 4), np.float32))).status_code == 200
    assert not sink.exists()


def record(rows: int = 1) -> PayloadRecord:
    return PayloadRecord(1_700_000_000_000, "r", "1", {"x": np.ones((rows, 2))}, {"y": np.ones(rows)})


def test_a_full_queue_drops_instead_of_blocking(tmp_path: Path) -> None:
    dropped: list[int] = []
    logger = PayloadLogger(
        str(tmp_path),
        "m",
        FeatureNaming(),
        queue_size=1,
        flush_rows=100,
        flush_seconds=60,
        on_written=lambda _: None,
        on_dropped=dropped.append,
    )
    for rows in (1, 2, 3):  # the writer thread is not started: nothing drains the queue
        logger.submit(record(rows))
    assert dropped == [2, 3]


def test_s3_sink(s3: Any) -> None:
    s3.mkdir("payloads")
    written: list[int] = []
    logger = PayloadLogger(
        "s3://payloads/prod",
        "m",
        FeatureNaming("x", ("a", "b")),
        queue_size=10,
        flush_rows=100,
        flush_seconds=60,
        on_written=written.append,
        on_dropped=lambda _: None,
    )
    logger.start()
    logger.submit(record(3))
    logger.close(timeout=30)
    assert written == [3]
    table = logged_rows("s3://payloads/prod", "m")
    assert table.column_names[6:] == ["a", "b", "_output.y"]
    assert table.num_rows == 3
