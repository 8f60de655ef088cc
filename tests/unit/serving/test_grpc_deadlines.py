"""A gRPC call whose deadline passes while it waits is not run, and is not counted as a server error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from tests.fixtures.serve import ServerProcess
from tests.unit.serving.grpc_helpers import grpc_server, infer_request
from tests.unit.serving.test_grpc_shared import gather_inputs

pytestmark = pytest.mark.unit

CALLS = 60
DEADLINE_S = 0.2  # a run of the slow model takes ~20 ms and batching is off: most of the calls expire


def test_expired_calls_are_skipped_and_counted_as_the_client_closing(
    server_process: Callable[..., ServerProcess], slow_gather_path: Path
) -> None:
    with grpc_server(
        server_process, model_uri=str(slow_gather_path), model_name="gather", max_batch_size="1"
    ) as server:
        server.stub.ModelInfer(infer_request("gather", gather_inputs(0), raw=True), timeout=60)
        batch = {"model": "gather", "version": "1"}
        rows_before = server.metric("kubeloop_serving_batch_size_sum", **batch)
        calls = [
            server.stub.ModelInfer.future(
                infer_request("gather", gather_inputs(row), raw=True), timeout=DEADLINE_S
            )
            for row in range(CALLS)
        ]
        codes = []
        for call in calls:
            try:
                call.result()
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                codes.append(error.code())
        # a run under way when its deadline passed finishes; then the batcher is idle again
        server.stub.ModelInfer(infer_request("gather", gather_inputs(1), raw=True), timeout=60)
        rows = server.metric("kubeloop_serving_batch_size_sum", **batch) - rows_before
        counted = {
            code: server.metric("kubeloop_serving_requests_total", model="gather", code=code)
            for code in ("200", "499", "500")
        }
        inflight = server.metric("kubeloop_serving_inflight_requests", model="gather")
    expired = codes.count(grpc.StatusCode.DEADLINE_EXCEEDED)
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED}
    assert expired > 0, "every call finished within its deadline: nothing was tested"
    assert rows < CALLS + 1, "the expired calls were run all the same"
    assert counted["500"] == 0, "a client's deadline was counted as a server error"
    # an answer can cross its deadline on the way back: the server counted it 200, the client saw it expire
    answered = 2 + codes.count(grpc.StatusCode.OK)
    assert counted["200"] >= answered, "an answer the client received was not counted 200"
    assert counted["499"] > 0, "no call was counted as the client closing"
    assert counted["499"] + counted["200"] - answered <= expired, (
        "the server counted more calls unanswered than the client saw expire"
    )
    assert inflight == 0
