"""The native data plane (kubeloop-dataplane in front of ``kubeloop serve``) against the Python one.

Two real servers load the same model, one with ``DATAPLANE=native``. Every request of a corpus goes to
both; the answers must be the same (status, body, track and request-id headers). The native process's
own counts (its stats document, read with the contract's parser) show which requests it answered
itself: exactly the corpus's plain JSON ones. Then both servers' metrics must agree, series by series.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from prometheus_client.parser import text_string_to_metric_families

from kubeloop.contracts.dataplane import STATS_PATH, DataPlaneStats
from kubeloop.contracts.routing import Canary, Routes
from kubeloop_serving.metrics import LATENCY_BUCKETS, PREDICTION_BUCKETS
from tests.fixtures.dataplane import dataplane_binary
from tests.fixtures.serve import ServerProcess
from tests.unit.serving.conftest import OPSET, TABULAR_BIAS, TABULAR_WEIGHTS, tabular_model, wait_for
from tests.unit.serving.routing_helpers import publish_routes

pytestmark = pytest.mark.unit

HEX_ID = re.compile(r"[0-9a-f]{32}")
ROW = [0.5, -1.25, 3.0, 0.125]


@dataclass(frozen=True)
class Case:
    """One request; ``native``: whether the native process answers it itself."""

    name: str
    body: bytes
    native: bool
    path: str = "/v2/models/tab/infer"
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


def document(data: Any, shape: list[int], **extra: Any) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "x", "shape": shape, "datatype": "FP32", "data": data}], **extra}
    ).encode()


CASES = [
    Case("flat row", document(ROW, [1, 4]), True),
    Case("three nested rows", document([ROW, [1, 2, 3, 4], [-0.0, 1e-3, 2.5e2, -7]], [3, 4]), True),
    Case("integers for FP32", document([1, 2, 3, 4], [1, 4]), True),
    Case(
        "digits past double precision",
        document([0.12345678901234567890123, 1e-30, 3.4028235e38, 7.0], [1, 4]),
        True,
    ),
    Case(
        "exponents",
        b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1E2,-2.5e-3,3e+1,0.0]}]}',
        True,
    ),
    Case(
        "white space and key order",
        b' { "inputs" : [ { "data" : [ [ 1.5 , 2 ] , [ 3 , 4 ] ] ,\n "shape":[ 2 , 2 ] , '
        b'"datatype":"FP32","name":"x" } ] }',
        False,  # shape [2, 2] is not the model's [N, 4]
    ),
    Case(
        "white space, nested",
        b' { "inputs" : [ { "data" : [ [ 1.5 , 2 , 3 , 4 ] ] ,\n "shape":[ 1 , 4 ] , '
        b'"datatype":"FP32","name":"x" } ] } ',
        True,
    ),
    Case("an id", document(ROW, [1, 4], id="req-1"), True),
    Case("an x-request-id header", document(ROW, [1, 4]), True, headers={"x-request-id": "from-header"}),
    Case("an empty id", document(ROW, [1, 4], id=""), True, headers={"x-request-id": "header-wins"}),
    Case("outputs chosen", document(ROW, [1, 4], outputs=[{"name": "label"}]), True),
    Case(
        "outputs, binary false",
        document(
            ROW, [1, 4], outputs=[{"name": "label", "parameters": {"binary_data": False}}, {"name": "scores"}]
        ),
        True,
    ),
    Case("empty parameters", document(ROW, [1, 4], parameters={}), True),
    Case("the version's path", document(ROW, [1, 4]), True, path="/v2/models/tab/versions/1/infer"),
    # forwarded to the Python server, which answers as it always has
    Case("a long integer", document([123456789012345678, 1, 2, 3], [1, 4]), False),
    Case(
        "negative zero integer",
        b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[-0,1,2,3]}]}',
        False,
    ),
    Case("parameters", document(ROW, [1, 4], parameters={"binary_data_output": True}), False),
    Case(
        "binary output asked",
        document(ROW, [1, 4], outputs=[{"name": "label", "parameters": {"binary_data": True}}]),
        False,
    ),
    Case(
        "escaped name",
        b'{"inputs":[{"name":"\\u0078","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}',
        False,
    ),
    Case("not JSON", b'{"inputs": [', False),
    Case("trailing garbage", document(ROW, [1, 4]) + b"x", False),
    Case("no inputs", b'{"inputs": []}', False),
    Case("wrong datatype", document(ROW, [1, 4]).replace(b"FP32", b"FP64"), False),
    Case("wrong width", document([1, 2, 3], [1, 3]), False),
    Case("count mismatch", document(ROW, [2, 4]), False),
    Case("ragged", document([[1, 2, 3, 4], [1, 2]], [2, 4]), False),
    Case("strings", document(["a", "b", "c", "d"], [1, 4]), False),
    Case("booleans", document([True, 1.0, 2.0, 3.0], [1, 4]), False),
    Case("NaN", b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[NaN,1,2,3]}]}', False),
    Case("unknown input", document(ROW, [1, 4]).replace(b'"x"', b'"y"'), False),
    Case("unknown output", document(ROW, [1, 4], outputs=[{"name": "nope"}]), False),
    Case("id too long", document(ROW, [1, 4], id="i" * 300), False),
    Case("id not a string", document(ROW, [1, 4], id=7), False),
    Case("another model", document(ROW, [1, 4]), False, path="/v2/models/other/infer"),
    Case("another version", document(ROW, [1, 4]), False, path="/v2/models/tab/versions/9/infer"),
    Case("GET on infer", b"", False, method="GET"),
    Case("empty batch", document([], [0, 4]), False),
    Case("metadata", b"", False, path="/v2/models/tab", method="GET"),
    Case("health", b"", False, path="/v2/health/ready", method="GET"),
]


def label_first_model(path: Path) -> Path:
    """x [N, 4] FP32 -> label [N] INT64, scores [N, 3]: the first output is a class (predicted_class)."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["scores"]),
            helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0),
        ],
        "label_first",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3]),
        ],
        [numpy_helper.from_array(TABULAR_WEIGHTS, "W"), numpy_helper.from_array(TABULAR_BIAS, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@dataclass
class Pair:
    python: ServerProcess
    native: ServerProcess


@pytest.fixture(scope="module", params=["scores first", "label first"])
def pair(
    request: pytest.FixtureRequest,
    module_process: Callable[..., ServerProcess],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pair]:
    folder = tmp_path_factory.mktemp("native")
    build = tabular_model if request.param == "scores first" else label_first_model
    model = str(build(folder / "tab.onnx"))
    settings = {"model_uri": model, "model_name": "tab", "intra_op_threads": "1", "max_batch_size": "1"}
    python = module_process(**settings)
    native = module_process(**settings, dataplane="native", dataplane_binary=str(dataplane_binary()))
    yield Pair(python.start(), native.start())


def send(client: httpx.Client, case: Case) -> httpx.Response:
    return client.request(case.method, case.path, content=case.body or None, headers=case.headers)


def same_answer(case: Case, python: httpx.Response, native: httpx.Response) -> None:
    assert native.status_code == python.status_code, (case.name, native.text, python.text)
    for header in ("content-type", "x-kubeloop-track", "inference-header-content-length"):
        assert native.headers.get(header) == python.headers.get(header), (case.name, header)
    split = int(python.headers.get("inference-header-content-length", len(python.content)))
    assert native.content[split:] == python.content[split:], case.name  # binary outputs, if any
    ours, theirs = json.loads(native.content[:split]), json.loads(python.content[:split])
    given = python.headers.get("x-request-id")
    if given is not None and HEX_ID.fullmatch(given):  # generated: each server makes its own
        assert HEX_ID.fullmatch(native.headers["x-request-id"]), case.name
        assert ours.pop("id") == native.headers["x-request-id"] and theirs.pop("id") == given, case.name
    else:
        assert native.headers.get("x-request-id") == given, case.name
    assert ours == theirs, case.name


def stats(server: ServerProcess) -> DataPlaneStats:
    return DataPlaneStats.from_json(httpx.get(server.url + STATS_PATH).content)


def test_every_answer_is_the_python_servers_and_only_plain_requests_stay_native(pair: Pair) -> None:
    before = stats(pair.native).requests
    with httpx.Client(base_url=pair.python.url) as python, httpx.Client(base_url=pair.native.url) as native:
        for case in CASES:
            same_answer(case, send(python, case), send(native, case))
    answered = stats(pair.native)
    assert answered.requests - before == sum(case.native for case in CASES)
    assert answered.duration.bounds == LATENCY_BUCKETS and answered.prediction.bounds == PREDICTION_BUCKETS
    assert answered.inflight == 0


COMPARED = ("kubeloop_serving_requests", "kubeloop_serving_request_duration", "kubeloop_serving_predict")


def series(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The request, duration and prediction series but the durations' sums and buckets (times differ)."""
    exposition = httpx.get(server.url + "/metrics").text
    found = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            timed = sample.name.startswith("kubeloop_serving_request_duration") and not sample.name.endswith(
                "_count"
            )
            if sample.name.startswith(COMPARED) and not timed and not sample.name.endswith("_created"):
                found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_metrics_count_what_either_process_answered(pair: Pair) -> None:
    """Both servers answered the same corpus (the test above ran first): the same counts, series by
    series, though one server answered most 200s natively and the other all of them in Python."""
    with httpx.Client(base_url=pair.python.url) as python, httpx.Client(base_url=pair.native.url) as native:
        for case in CASES:  # again, so the test stands alone too
            send(python, case)
            send(native, case)
    ours, theirs = series(pair.native), series(pair.python)
    assert ours == theirs
    assert any(name == "kubeloop_serving_requests_total" and value > 0 for (name, _), value in ours.items())


def native_server(start: Callable[..., ServerProcess], model: Path, **settings: str) -> ServerProcess:
    """A started server for `model` (named after its file) with the native front, and `settings`."""
    binary = str(dataplane_binary())
    return start(
        model_uri=str(model), model_name=model.stem, dataplane="native", dataplane_binary=binary, **settings
    ).start()


def test_sigterm_drains_the_front_first_and_loses_no_request(
    module_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Keep-alive clients' requests after SIGTERM are still answered, the front's own and those it
    forwards (the server behind it serves until the front has drained), and told to close."""
    server = native_server(module_process, tabular_model(tmp_path / "tab.onnx"))
    body = document(ROW, [1, 4])
    with httpx.Client(base_url=server.url) as inferring, httpx.Client(base_url=server.url) as reading:
        assert inferring.post("/v2/models/tab/infer", content=body).status_code == 200
        assert reading.get("/v2/models/tab").status_code == 200
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the front has stopped accepting; these two connections are still open
        for answer in (inferring.post("/v2/models/tab/infer", content=body), reading.get("/v2/models/tab")):
            assert answer.status_code == 200 and answer.headers["connection"] == "close", answer.text
        with pytest.raises(httpx.ConnectError):  # a new connection is refused: a Service moves on
            inferring.get("/v2/models/tab")
    assert server.wait_exit() == 0, server.log_tail()
    assert "kubeloop-dataplane: stopped" in server.output


def test_the_server_stops_when_its_front_dies(
    module_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = native_server(module_process, tabular_model(tmp_path / "tab.onnx"))
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    os.kill(int(children[0]), signal.SIGKILL)  # the front, the server's only child
    assert server.wait_exit() == 1
    assert "kubeloop-dataplane exited" in server.output


def test_without_native_types_every_request_is_forwarded(
    module_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """A model with a BYTES input: the front forwards everything, and serving works as before."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["same"])],
        "strings",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, ["N"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "text.onnx"))
    server = native_server(module_process, tmp_path / "text.onnx")
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}
    answer = httpx.post(server.url + "/v2/models/text/infer", json=body)
    assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == ["hi"]
    assert stats(server).requests == 0
    deadline = time.monotonic() + 5
    while "every request forwarded" not in server.output and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "every request forwarded" in server.output


def test_while_the_server_routes_its_front_forwards_inference_to_it(
    module_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Routing is the Python server's: with a canary share in the routes file every inference goes
    through it (and to the canary at weight 100); with none, the front answers again."""
    model = tabular_model(tmp_path / "tab.onnx")
    canary = module_process(model_uri=str(model), model_name="tab", track="canary").start()
    routes = tmp_path / "routes"
    link = publish_routes(routes, Routes(canary=Canary(url=canary.url, weight_percent=0)))
    stable = native_server(module_process, model, routes_file=str(link), routes_poll_seconds="0.1")
    body = document(ROW, [1, 4])

    def track() -> str:
        answer = httpx.post(f"{stable.url}/v2/models/tab/infer", content=body)
        assert answer.status_code == 200, answer.text
        return answer.headers["x-kubeloop-track"]

    answered = stats(stable).requests
    assert track() == "stable" and stats(stable).requests == answered + 1
    publish_routes(routes, Routes(generation=1, canary=Canary(url=canary.url, weight_percent=100)))
    wait_for(lambda: track() == "canary", "the canary at weight 100")
    answered = stats(stable).requests
    assert [track() for _ in range(5)] == ["canary"] * 5 and stats(stable).requests == answered
    publish_routes(routes, Routes(generation=2, canary=Canary(url=canary.url, weight_percent=0)))
    wait_for(lambda: track() == "stable" and stats(stable).requests > answered, "the front answering again")
