"""The peer: KServe's Python model server wrapping the same onnxruntime session (run in .venv-kserve).

Usage: python serving_kserve_server.py MODEL.onnx NAME PORT THREADS

The session is built by kubeloop_serving.runtime (serving/ on PYTHONPATH; that module needs
only onnxruntime), so both servers run identical session options. KServe serves its own v2
REST endpoint (POST /v2/models/NAME/infer). Its gRPC server and per-request latency log
lines are turned off so neither competes for the pinned core.
"""

from __future__ import annotations

import logging
import sys
import uuid
from typing import Any

import kserve
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from kubeloop_serving.datatypes import oip_datatype_of_dtype
from kubeloop_serving.runtime import create_session


class OnnxModel(kserve.Model):  # type: ignore[misc]
    """One onnxruntime session; predict runs it on the request's numpy inputs."""

    def __init__(self, name: str, path: str, threads: int) -> None:
        super().__init__(name)
        self.path = path
        self.threads = threads
        self.session: Any = None
        self.load()

    def load(self) -> bool:
        self.session = create_session(self.path, self.threads)
        self.output_names = [output.name for output in self.session.get_outputs()]
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        feeds = {tensor.name: tensor.as_numpy() for tensor in payload.inputs}
        results = self.session.run(self.output_names, feeds)
        outputs = [
            InferOutput(
                name=name, shape=list(array.shape), datatype=oip_datatype_of_dtype(array.dtype), data=array
            )
            for name, array in zip(self.output_names, results, strict=True)
        ]
        return InferResponse(
            model_name=self.name, infer_outputs=outputs, response_id=payload.id or str(uuid.uuid4())
        )


def main() -> None:
    path, name, port, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    model = OnnxModel(name, path, threads)
    server = kserve.ModelServer(http_port=port, workers=1, enable_grpc=False, enable_latency_logging=False)
    for noisy in ("uvicorn.access", "kserve.trace"):  # one log line per request otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    server.start([model])


if __name__ == "__main__":
    main()
