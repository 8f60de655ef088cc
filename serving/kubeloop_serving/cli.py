"""``kubeloop serve``: run the inference server from KUBELOOP_SERVING_* settings."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from pydantic import ValidationError

from kubeloop_serving.server import EXIT_FAILED, ServingServer
from kubeloop_serving.settings import ENV_PREFIX, ServingSettings

EXIT_USAGE = 2
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def argument_parser() -> argparse.ArgumentParser:
    """Flags that override the matching environment variables."""
    parser = argparse.ArgumentParser(
        prog="kubeloop serve",
        description=f"Serve one ONNX model over Open Inference Protocol v2. Every setting is read from "
        f"{ENV_PREFIX}* environment variables; these flags override them.",
    )
    parser.add_argument("--model-uri", help=f"overrides {ENV_PREFIX}MODEL_URI")
    parser.add_argument("--model-name", help=f"overrides {ENV_PREFIX}MODEL_NAME")
    parser.add_argument("--model-version", help=f"overrides {ENV_PREFIX}MODEL_VERSION")
    parser.add_argument("--host", help=f"overrides {ENV_PREFIX}HOST")
    parser.add_argument("--port", type=int, help=f"overrides {ENV_PREFIX}PORT")
    parser.add_argument("--grpc-port", type=int, help=f"overrides {ENV_PREFIX}GRPC_PORT (0: no gRPC)")
    parser.add_argument("--max-batch-size", type=int, help=f"overrides {ENV_PREFIX}MAX_BATCH_SIZE")
    parser.add_argument("--intra-op-threads", type=int, help=f"overrides {ENV_PREFIX}INTRA_OP_THREADS")
    parser.add_argument("--payload-log-uri", help=f"overrides {ENV_PREFIX}PAYLOAD_LOG_URI")
    parser.add_argument("--log-level", help=f"overrides {ENV_PREFIX}LOG_LEVEL")
    return parser


def settings_from(argv: list[str] | None) -> ServingSettings:
    """Settings from the environment, overridden by the given flags."""
    flags = vars(argument_parser().parse_args(argv))
    overrides: dict[str, Any] = {name: value for name, value in flags.items() if value is not None}
    return ServingSettings(**overrides)


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGTERM; 0 after a clean drain, 1 if the model cannot be served."""
    try:
        settings = settings_from(argv)
    except ValidationError as error:
        print(
            f"kubeloop serve: invalid settings ({ENV_PREFIX}* variables or flags):\n{error}", file=sys.stderr
        )
        return EXIT_USAGE
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    try:
        return ServingServer(settings).run()
    except KeyboardInterrupt:  # pragma: no cover - second Ctrl-C
        return EXIT_FAILED
