"""The serving benchmark's two reference points, measured in the same run as the servers.

* The HTTP floor: a bare ASGI endpoint under uvicorn (uvloop + httptools, like ours) that reads
  the request body and returns a fixed body of the size of an OIP answer. No server can answer
  faster over the same HTTP stack.
* The gRPC floor: a bare grpcio aio ModelInfer handler that returns a fixed ModelInferResponse
  (raw contents, the size of an answer for one row of ten FP32 outputs), in the same process and
  event loop as the HTTP floor, as kubeloop serves gRPC beside REST. No server can answer faster
  through grpcio.
* The compute floor: onnxruntime called in-process with the same session options, pinned to the
  same CPUs: rows/s of ``session.run`` at batch 1 and at batch 32, and at batch 1 after
  ``orjson.loads`` + ``np.asarray`` of the same JSON body (what decoding a request costs).

    python -m bench.serving_floors http PORT
    python -m bench.serving_floors grpc PORT GRPC_PORT     # the HTTP floor on PORT, gRPC on GRPC_PORT
    python -m bench.serving_floors compute MODEL.onnx BODY.json THREADS SECONDS   # prints JSON
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import orjson
import uvicorn
import uvloop
from grpc import aio

from kubeloop_serving.oip_grpc import grpc_predict_v2_pb2 as pb
from kubeloop_serving.runtime import create_session

#: The size of kubeloop's answer for the benchmark models (one row, ten FP32 outputs).
FIXED_BODY = orjson.dumps(
    {
        "model_name": "floor",
        "model_version": "1",
        "id": "0" * 32,
        "outputs": [{"name": "out", "datatype": "FP32", "shape": [1, 10], "data": [0.123456789] * 10}],
    }
)
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(FIXED_BODY)).encode())]
BATCH = 32
MODEL_INFER = ("inference.GRPCInferenceService", "ModelInfer")


def fixed_grpc_answer() -> bytes:
    """A serialized ModelInferResponse of the size of kubeloop's for one row of ten FP32 outputs."""
    answer = pb.ModelInferResponse(
        model_name="floor", model_version="1", id="0" * 32, raw_output_contents=[bytes(40)]
    )
    answer.outputs.add(name="out", datatype="FP32", shape=[1, 10])
    body: bytes = answer.SerializeToString()
    return body


Message = MutableMapping[str, Any]


async def fixed_answer(
    scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    """Read the whole body, answer FIXED_BODY (any path, so the readiness probe passes too)."""
    if scope["type"] != "http":
        return
    message = await receive()
    while message.get("more_body", False):
        message = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": FIXED_BODY})


def http_config(port: int) -> uvicorn.Config:
    return uvicorn.Config(
        fixed_answer,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        server_header=False,
        log_level="warning",
    )


def serve_http(port: int) -> None:
    uvicorn.Server(http_config(port)).run()


async def serve_grpc(port: int, grpc_port: int) -> None:
    """The HTTP floor and, in its event loop, a grpcio aio server answering every ModelInfer at once."""
    answer = fixed_grpc_answer()

    async def model_infer(_: bytes, __: object) -> bytes:
        return answer

    service, method = MODEL_INFER
    handler = grpc.method_handlers_generic_handler(
        service, {method: grpc.unary_unary_rpc_method_handler(model_infer)}
    )
    server = aio.server(options=[("grpc.max_receive_message_length", -1), ("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    await server.start()
    try:
        await uvicorn.Server(http_config(port)).serve()
    finally:
        await server.stop(None)


def rate(call: Callable[[], object], rows: int, seconds: float) -> float:
    """Rows per second of ``call`` (``rows`` per call) over about ``seconds``, after one warm-up call."""
    call()
    calls = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        call()
        calls += 1
    return round(calls * rows / elapsed, 1)


def compute_floor(model: Path, body: bytes, threads: int, seconds: float) -> dict[str, float]:
    """onnxruntime's rows/s in-process on the body's input: batch 1, batch 32, and batch 1 with decode."""
    session = create_session(str(model), threads)
    names = [output.name for output in session.get_outputs()]
    tensor = orjson.loads(body)["inputs"][0]
    shape = tuple(tensor["shape"])
    one = {tensor["name"]: np.asarray(tensor["data"], dtype=np.float32).reshape(shape)}
    many = {tensor["name"]: np.repeat(one[tensor["name"]], BATCH, axis=0)}

    def decode_and_run() -> object:
        parsed = orjson.loads(body)["inputs"][0]
        array = np.asarray(parsed["data"]).astype(np.float32).reshape(shape)
        return session.run(names, {parsed["name"]: array})

    return {
        "batch1_rows_per_s": rate(lambda: session.run(names, one), 1, seconds),
        f"batch{BATCH}_rows_per_s": rate(lambda: session.run(names, many), BATCH, seconds),
        "batch1_with_json_decode_rows_per_s": rate(decode_and_run, 1, seconds),
    }


def main() -> None:
    if sys.argv[1] == "http":
        serve_http(int(sys.argv[2]))
    elif sys.argv[1] == "grpc":
        uvloop.run(serve_grpc(int(sys.argv[2]), int(sys.argv[3])))
    elif sys.argv[1] == "compute":
        model, body, threads, seconds = sys.argv[2:6]
        floor = compute_floor(Path(model), Path(body).read_bytes(), int(threads), float(seconds))
        print(json.dumps(floor))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
