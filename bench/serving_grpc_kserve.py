"""The gRPC peer: KServe's model server (bench/serving_kserve_server.py's model) with its gRPC on.

Usage: python -m bench.serving_grpc_kserve MODEL.onnx NAME HTTP_PORT THREADS GRPC_PORT (in .venv-kserve)
"""

from __future__ import annotations

import logging
import sys

import kserve

from bench.serving_kserve_server import OnnxModel


def main() -> None:
    path, name, port, threads, grpc_port = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    model = OnnxModel(name, path, threads)
    server = kserve.ModelServer(
        http_port=port, grpc_port=grpc_port, workers=1, enable_grpc=True, enable_latency_logging=False
    )
    for noisy in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    server.start([model])


if __name__ == "__main__":
    main()
