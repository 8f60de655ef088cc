"""gRPC ModelInfer calls routed by the routes file, between real `kubeloop serve` processes: the canary's
exact share, its answers and errors as it gave them, fallbacks, A/B arms sticky across REST and gRPC,
and the shadow's copies compared."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from kubeloop.contracts.routing import FORWARDED_HEADER, TRACK_HEADER, ABTest, Canary, Routes, Shadow, Variant
from kubeloop_serving.oip_grpc import grpc_predict_v2_pb2 as pb
from tests.fixtures.ports import free_port
from tests.fixtures.serve import ServerProcess
from tests.unit.serving.conftest import metric_value, tabular_reference, wait_for
from tests.unit.serving.grpc_helpers import GrpcServer, grpc_server, infer_request, outputs_of
from tests.unit.serving.routing_helpers import publish_routes

pytestmark = pytest.mark.unit
X = np.arange(8, dtype=np.float32).reshape(2, 4)


@pytest.fixture(scope="module")
def other(module_process: Callable[..., ServerProcess], tabular_path: Path) -> Iterator[GrpcServer]:
    """The server the routes point at (the canary, an A/B arm, the shadow): the same model."""
    with grpc_server(module_process, model_uri=str(tabular_path), model_name="tab", track="canary") as server:
        yield server


class Stable:
    """The stable server and its routes directory; ``publish`` waits until the new table is in effect."""

    def __init__(self, server: GrpcServer, routes_dir: Path) -> None:
        self.server = server
        self.routes_dir = routes_dir
        self.generation = 0

    def publish(self, routes: Routes) -> None:
        self.generation += 1
        publish_routes(self.routes_dir, routes.model_copy(update={"generation": self.generation}))
        wait_for(
            lambda: self.metric("kubeloop_serving_routes_generation") == self.generation, "the new routes"
        )

    def metric(self, name: str, **labels: str) -> float:
        return metric(self.server, name, **labels)


@pytest.fixture(scope="module")
def stable(
    module_process: Callable[..., ServerProcess], tabular_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stable]:
    routes_dir = tmp_path_factory.mktemp("grpc-routes")
    link = publish_routes(routes_dir, Routes())
    with grpc_server(
        module_process,
        model_uri=str(tabular_path),
        model_name="tab",
        routes_file=str(link),
        routes_poll_seconds="0.1",
    ) as server:
        yield Stable(server, routes_dir)


def metric(server: GrpcServer, name: str, **labels: str) -> float:
    return metric_value(httpx.get(f"{server.process.url}/metrics").text, name, **labels)


def infer(
    stable: Stable, request: pb.ModelInferRequest, metadata: tuple[tuple[str, str], ...] = ()
) -> tuple[pb.ModelInferResponse, str]:
    """The answer and the track its trailing metadata names."""
    response, call = stable.server.stub.ModelInfer.with_call(request, metadata=metadata, timeout=60)
    return response, dict(call.trailing_metadata())[TRACK_HEADER]


def test_the_canary_gets_exactly_its_share_of_calls_and_answers_them(
    stable: Stable, other: GrpcServer
) -> None:
    stable.publish(Routes(canary=Canary(url=other.process.url, weight_percent=25, grpc_target=other.address)))
    before = metric(other, "kubeloop_serving_requests_total", track="canary", code="200")
    tracks: Counter[str] = Counter()
    scores, label = tabular_reference(X)
    for index in range(200):
        request = infer_request("tab", {"x": ("FP32", X)}, raw=index % 2 == 0, id=f"call-{index}")
        response, track = infer(stable, request, (("x-custom", "kept"),))
        tracks[track] += 1
        assert response.id == f"call-{index}" and response.model_name == "tab"
        assert bool(response.raw_output_contents) == (index % 2 == 0), (
            "the answer keeps the request's encoding"
        )
        outputs = outputs_of(response)
        np.testing.assert_allclose(outputs["scores"], scores, rtol=1e-6)
        np.testing.assert_array_equal(outputs["label"], label)
    assert tracks == Counter({"stable": 150, "canary": 50}), "one call in four, exactly"
    assert stable.metric("kubeloop_serving_routed_requests_total", route="canary", code="200") == 50
    assert stable.metric("kubeloop_serving_requests_total", track="stable", code="200") == 150
    assert metric(other, "kubeloop_serving_requests_total", track="canary", code="200") - before == 50
    # a call already forwarded, or one naming a version, is served here
    marked = infer_request("tab", {"x": ("FP32", X)}, raw=True)
    assert all(infer(stable, marked, ((FORWARDED_HEADER, "stable"),))[1] == "stable" for _ in range(8))
    pinned = infer_request("tab", {"x": ("FP32", X)}, raw=True, model_version="1")
    assert all(infer(stable, pinned)[1] == "stable" for _ in range(8))


def test_a_canary_error_ends_the_call_with_its_code_and_message(stable: Stable, other: GrpcServer) -> None:
    stable.publish(
        Routes(canary=Canary(url=other.process.url, weight_percent=100, grpc_target=other.address))
    )
    wrong = infer_request("tab", {"x": ("FP32", np.zeros((2, 5), np.float32))}, raw=True)
    with pytest.raises(grpc.RpcError) as failed:
        infer(stable, wrong)
    error: Any = failed.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input 'x'" in error.details() and "shape" in error.details(), error.details()
    assert dict(error.trailing_metadata())[TRACK_HEADER] == "canary"
    assert stable.metric("kubeloop_serving_routed_requests_total", route="canary", code="400") == 1
    assert stable.metric("kubeloop_serving_requests_total", track="stable", code="400") == 0
    assert "unhandled error" not in stable.server.process.output, "the route's error is no error here"


def test_an_unreachable_canary_is_served_here_and_counted(stable: Stable) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    stable.publish(Routes(canary=Canary(url=f"http://{nowhere}", weight_percent=50, grpc_target=nowhere)))
    before = stable.metric("kubeloop_serving_route_fallbacks_total", route="canary", reason="connect")
    request = infer_request("tab", {"x": ("FP32", X)}, raw=True)
    assert {infer(stable, request)[1] for _ in range(40)} == {"stable"}
    after = stable.metric("kubeloop_serving_route_fallbacks_total", route="canary", reason="connect")
    assert after - before == 20


def test_a_canary_that_accepts_but_never_answers_is_given_up_at_the_connect_timeout(stable: Stable) -> None:
    """A listening socket that never speaks HTTP/2: the connection attempt (the default
    FORWARD_CONNECT_TIMEOUT_SECONDS, 1 s) fails, not the forward's 60 s deadline, which would outlast
    this call's own 30 s deadline."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        target = f"127.0.0.1:{silent.getsockname()[1]}"
        stable.publish(Routes(canary=Canary(url=f"http://{target}", weight_percent=100, grpc_target=target)))
        request = infer_request("tab", {"x": ("FP32", X)}, raw=True)
        response, call = stable.server.stub.ModelInfer.with_call(request, timeout=30)
        assert dict(call.trailing_metadata())[TRACK_HEADER] == "stable" and len(response.outputs) == 2


def test_a_route_without_a_grpc_target_leaves_grpc_calls_here(stable: Stable, other: GrpcServer) -> None:
    stable.publish(Routes(canary=Canary(url=other.process.url, weight_percent=100)))
    request = infer_request("tab", {"x": ("FP32", X)}, raw=True)
    assert {infer(stable, request)[1] for _ in range(10)} == {"stable"}
    rest = httpx.post(
        f"{stable.server.process.url}/v2/models/tab/infer",
        json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": X.ravel().tolist()}]},
    )
    assert rest.headers[TRACK_HEADER] == "canary", "REST still goes to the route"


def test_ab_arms_are_sticky_per_user_across_rest_and_grpc(stable: Stable, other: GrpcServer) -> None:
    variants = [
        Variant(name="a", weight_percent=40),
        Variant(name="b", url=other.process.url, weight_percent=60, grpc_target=other.address),
    ]
    stable.publish(Routes(ab=ABTest(header="X-User", variants=variants)))
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": X.ravel().tolist()}]}
    request = infer_request("tab", {"x": ("FP32", X)}, raw=True)
    arms: Counter[str] = Counter()
    with httpx.Client(base_url=stable.server.process.url) as client:
        for user in range(150):
            rest = client.post("/v2/models/tab/infer", json=body, headers={"X-User": f"user-{user}"})
            grpc_tracks = {infer(stable, request, (("x-user", f"user-{user}"),))[1] for _ in range(2)}
            assert grpc_tracks == {rest.headers[TRACK_HEADER]}, f"user-{user} moved between arms"
            arms[rest.headers[TRACK_HEADER]] += 1
    assert set(arms) == {"a", "b"} and abs(arms["b"] / 150 - 0.6) < 0.15, arms


def test_calls_answered_here_are_mirrored_to_the_shadow_and_compared(
    stable: Stable, other: GrpcServer
) -> None:
    shadow = Shadow(url=other.process.url, percent=100, grpc_target=other.address)
    stable.publish(Routes(shadow=shadow))
    before = metric(other, "kubeloop_serving_requests_total", track="canary", code="200")
    for index in range(30):
        _, track = infer(stable, infer_request("tab", {"x": ("FP32", X)}, raw=index % 3 != 0))
        assert track == "stable"
    wait_for(
        lambda: stable.metric("kubeloop_serving_shadow_requests_total", code="200") == 30,
        "30 copies answered",
    )
    wait_for(lambda: stable.metric("kubeloop_serving_shadow_rows_total", result="agree") == 60, "60 rows")
    assert stable.metric("kubeloop_serving_shadow_rows_total", result="disagree") == 0
    assert stable.metric("kubeloop_serving_shadow_requests_total", code="incomparable") == 0
    assert metric(other, "kubeloop_serving_requests_total", track="canary", code="200") - before == 30
