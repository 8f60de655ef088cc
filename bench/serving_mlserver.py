"""The second peer: MLServer 1.7.1 with the smallest honest ONNX runtime (run in .venv-mlserver).

Usage: python -m bench.serving_mlserver MODEL.onnx NAME PORT THREADS MAX_BATCH_SIZE

The runtime is an ``mlserver.MLModel`` that decodes each input with MLServer's own
``NumpyCodec``, runs the same onnxruntime session as ours (kubeloop_serving.runtime builds it,
serving/ on PYTHONPATH) and encodes each output with ``NumpyCodec``. The server runs in one
process (``parallel_workers: 0``), debug (and with it the access log) off, no metrics server
or middleware (``metrics_endpoint: null``); uvicorn picks uvloop and httptools, both installed.
MAX_BATCH_SIZE > 1 turns on MLServer's adaptive batching with ``max_batch_time`` 2 ms (ours).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

from kubeloop_serving.runtime import create_session

MAX_BATCH_TIME_S = 0.002
THREADS_ENV = "BENCH_ORT_THREADS"


class OnnxRuntime(MLModel):  # type: ignore[misc]
    """One onnxruntime session; NumpyCodec in, session.run, NumpyCodec out."""

    async def load(self) -> bool:
        self.session: Any = create_session(self.settings.parameters.uri, int(os.environ[THREADS_ENV]))
        self.output_names = [output.name for output in self.session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {tensor.name: NumpyCodec.decode_input(tensor) for tensor in payload.inputs}
        results = self.session.run(self.output_names, feeds)
        return InferenceResponse(
            model_name=self.name,
            id=payload.id,
            outputs=[
                NumpyCodec.encode_output(name, array)
                for name, array in zip(self.output_names, results, strict=True)
            ],
        )


def _spare_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_settings(folder: Path, model: str, name: str, port: int, max_batch_size: int) -> None:
    """settings.json and model-settings.json for ``mlserver start folder``."""
    server = {
        "debug": False,
        "parallel_workers": 0,
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": _spare_port(),  # MLServer always serves gRPC; idle here
        "metrics_endpoint": None,
    }
    batching = {"max_batch_size": max_batch_size, "max_batch_time": MAX_BATCH_TIME_S}
    settings = {
        "name": name,
        "implementation": "bench.serving_mlserver.OnnxRuntime",
        "parameters": {"uri": model},
        **(batching if max_batch_size > 1 else {}),
    }
    (folder / "settings.json").write_text(json.dumps(server))
    (folder / "model-settings.json").write_text(json.dumps(settings))


def main() -> None:
    model, name, port, threads, max_batch_size = sys.argv[1:6]
    folder = Path(tempfile.mkdtemp(prefix="kubeloop-bench-mlserver-"))
    write_settings(folder, model, name, int(port), int(max_batch_size))
    os.environ[THREADS_ENV] = threads
    mlserver = Path(sys.executable).parent / "mlserver"
    os.execv(mlserver, [str(mlserver), "start", str(folder)])


if __name__ == "__main__":
    main()
