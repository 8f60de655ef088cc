"""Keep-alive connections end after their age limit (kubeloop_serving.connections), over a real server:
REST answers `Connection: close` once a connection is past it, gRPC sends GOAWAY; no request fails."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest

from bench import serving_loadgen as loadgen
from kubeloop_serving.connections import JITTER, PRUNE_ABOVE, ConnectionAges
from kubeloop_serving.oip_grpc import grpc_predict_v2_pb2 as pb
from tests.fixtures.serve import ServerProcess
from tests.unit.serving.conftest import serve_in_thread, tabular_reference
from tests.unit.serving.grpc_helpers import grpc_server, infer_request, outputs_of

pytestmark = pytest.mark.unit

AGE_S = 0.4
X = np.arange(8, dtype=np.float32).reshape(2, 4)
BODY = json.dumps(
    {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": X.ravel().tolist()}]}
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_connection_ends_once_after_its_limit_with_jitter() -> None:
    clock = Clock()
    ages = ConnectionAges(10.0, clock)
    client = ("10.0.0.1", 40000)
    assert not ages.ending(client)  # first seen: its limit starts now
    clock.now += 10.0 * (1 - JITTER) - 0.01
    assert not ages.ending(client)
    clock.now += 10.0 * 2 * JITTER + 0.02
    assert ages.ending(client)
    assert not ages.ending(client), "the next connection from that address and port starts afresh"
    assert not ages.ending(None)


def test_entries_of_connections_closed_by_their_clients_are_pruned() -> None:
    clock = Clock()
    ages = ConnectionAges(1.0, clock)
    for port in range(PRUNE_ABOVE):
        ages.ending(("10.0.0.1", port))
    clock.now += 2.0  # every one of them past its limit, never seen again
    ages.ending(("10.0.0.2", 1))
    assert len(ages) == 1


def post(connection: http.client.HTTPConnection) -> tuple[int, str | None]:
    connection.request("POST", "/v2/models/tab/infer", BODY, {"Content-Type": "application/json"})
    response = connection.getresponse()
    document = json.loads(response.read())
    assert response.status == 200, document
    np.testing.assert_allclose(document["outputs"][0]["data"], tabular_reference(X)[0].ravel(), rtol=1e-6)
    return response.status, response.getheader("connection")


def test_rest_answers_connection_close_once_a_connection_is_past_its_age(tabular_path: Path) -> None:
    with serve_in_thread(tabular_path, model_name="tab", max_connection_age_seconds=AGE_S) as running:
        host, port = running.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        assert post(connection) == (200, None)
        first = connection.sock
        assert post(connection) == (200, None) and connection.sock is first, "kept alive while young"
        time.sleep(AGE_S * (1 + JITTER) + 0.05)
        assert post(connection) == (200, "close")
        assert connection.sock is None, "the client closed the connection the server ended"
        assert post(connection) == (200, None), "the next request goes on a new connection"
        connection.close()


def test_rest_keeps_connections_when_ages_are_off(tabular_path: Path) -> None:
    with serve_in_thread(tabular_path, model_name="tab", max_connection_age_seconds=0) as running:
        host, port = running.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        assert post(connection) == (200, None)
        first = connection.sock
        time.sleep(0.5)
        assert post(connection) == (200, None) and connection.sock is first
        connection.close()


def test_grpc_clients_reconnect_after_goaway_and_no_call_fails(
    server_process: Callable[..., ServerProcess], tabular_path: Path
) -> None:
    """Calls in a loop over several age limits: the channel connects again after each GOAWAY (READY
    more than once) and every call is answered."""
    age = str(AGE_S)
    with grpc_server(
        server_process, model_uri=str(tabular_path), model_name="tab", max_connection_age_seconds=age
    ) as server:
        channel = grpc.insecure_channel(server.address)
        ready = 0
        lock = threading.Lock()

        def watch(state: grpc.ChannelConnectivity) -> None:
            nonlocal ready
            with lock:
                ready += state is grpc.ChannelConnectivity.READY

        channel.subscribe(watch, try_to_connect=True)
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        calls = 0
        deadline = time.monotonic() + AGE_S * 5
        while time.monotonic() < deadline:
            response = infer(infer_request("tab", {"x": ("FP32", X)}, raw=True), timeout=10)
            np.testing.assert_allclose(outputs_of(response)["scores"], tabular_reference(X)[0], rtol=1e-6)
            calls += 1
        channel.unsubscribe(watch)
        channel.close()
        assert calls > 10
        assert ready >= 3, (
            f"the channel was READY {ready} times in {AGE_S * 5:g} s with a {AGE_S} s age limit"
        )


def test_the_benchmarks_load_generator_reconnects_when_a_connection_ends(tabular_path: Path) -> None:
    """bench.serving_loadgen against aged connections: every connection ends several times in the run,
    and each time the generator connects again (an ended connection it kept would count an error)."""
    body = BODY.encode()
    with serve_in_thread(tabular_path, model_name="tab", max_connection_age_seconds=0.2) as running:
        summary = asyncio.run(loadgen.run(f"{running.url}/v2/models/tab/infer", body, 4, 0.1, 1.5))
    assert summary["errors"] == 0
    assert summary["statuses"] == {"200": summary["requests"]}
    requests = summary["requests"]
    assert isinstance(requests, int) and requests > 20
