"""Concurrent requests merge into shared onnxruntime calls; a bad member fails alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.unit.serving.conftest import (
    GATHER_TABLE,
    RawResponse,
    RunningServer,
    post_all_at_once,
    serve_in_thread,
)

pytestmark = pytest.mark.unit

CONCURRENT = 24


def gather_request(row: int, index: int) -> dict[str, object]:
    return {
        "id": f"r{row}",
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [row, row, row, row]},
            {"name": "idx", "datatype": "INT64", "shape": [1], "data": [index]},
        ],
    }


def fire(url: str, requests: list[dict[str, object]]) -> list[RawResponse]:
    return post_all_at_once(url, "/v2/models/gather/infer", requests)


def batch_metrics(server: RunningServer) -> tuple[float, float]:
    labels = {"model": "gather", "version": "1"}
    count = server.metric("kubeloop_serving_batch_size_count", **labels)
    rows = server.metric("kubeloop_serving_batch_size_sum", **labels)
    return count, rows


def expected_y(row: int, index: int) -> list[list[float]]:
    rows: list[list[float]] = (GATHER_TABLE[[index]] + row).tolist()
    return rows


def test_concurrent_requests_share_onnxruntime_calls(slow_gather_path: Path) -> None:
    with serve_in_thread(slow_gather_path, model_name="gather", max_batch_size=32) as server:
        before_count, before_rows = batch_metrics(server)  # the warm-up does not go through the batcher
        responses = fire(server.url, [gather_request(i, i % 10) for i in range(CONCURRENT)])
        for i, response in enumerate(responses):
            assert response.status == 200, response.body
            output = response.json()["outputs"][0]
            assert response.json()["id"] == f"r{i}"
            np.testing.assert_array_equal(np.array(output["data"]).reshape(1, 4), expected_y(i, i % 10))
        count, rows = batch_metrics(server)
    assert rows - before_rows == CONCURRENT
    assert count - before_count < CONCURRENT, "no two requests were merged"


def test_a_bad_request_does_not_fail_its_batch(slow_gather_path: Path) -> None:
    with serve_in_thread(slow_gather_path, model_name="gather", max_batch_size=32) as server:
        requests = [gather_request(i, i % 10) for i in range(CONCURRENT)]
        bad_at = CONCURRENT // 2
        requests[bad_at] = gather_request(bad_at, 99)  # passes validation, fails inside onnxruntime
        responses = fire(server.url, requests)
        count, rows = batch_metrics(server)
    assert responses[bad_at].status == 400
    assert "out of data bounds" in responses[bad_at].json()["error"]
    for i, response in enumerate(responses):
        if i != bad_at:
            assert response.status == 200, response.body
            np.testing.assert_array_equal(
                np.array(response.json()["outputs"][0]["data"]).reshape(1, 4), expected_y(i, i % 10)
            )
    # Rows observed beyond the 24 requests were run twice: merged (the call failed), then alone.
    assert rows > CONCURRENT, "the bad request was never merged with good ones"
    assert count > 1


def test_max_batch_size_one_turns_batching_off(slow_gather_path: Path) -> None:
    with serve_in_thread(slow_gather_path, model_name="gather", max_batch_size=1) as server:
        responses = fire(server.url, [gather_request(i, 0) for i in range(8)])
        assert all(response.status == 200 for response in responses)
        assert batch_metrics(server) == (8, 8)
