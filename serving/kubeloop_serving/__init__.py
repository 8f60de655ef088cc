"""kubeloop's ONNX inference server: Open Inference Protocol v2, adaptive batching, payload logs.

Exports load lazily, so importing a light module (settings, payload_table) does not import FastAPI
or onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubeloop_serving.app import create_app
    from kubeloop_serving.errors import ServingError
    from kubeloop_serving.server import ServingServer
    from kubeloop_serving.settings import ServingSettings

_EXPORTS = {
    "create_app": "kubeloop_serving.app",
    "ServingError": "kubeloop_serving.errors",
    "ServingServer": "kubeloop_serving.server",
    "ServingSettings": "kubeloop_serving.settings",
}
__all__ = ["ServingError", "ServingServer", "ServingSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
