"""The FastAPI application: the data plane behind OIP v2 REST routes, with its lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from kubeloop_serving.dataplane import DataPlane, FatalHandler
from kubeloop_serving.explain.service import ExplanationService
from kubeloop_serving.infer_route import InferenceEndpoint
from kubeloop_serving.metrics import ServingMetrics
from kubeloop_serving.rest import build_router, install_error_handler
from kubeloop_serving.routing import Router
from kubeloop_serving.settings import ServingSettings

log = logging.getLogger(__name__)


def _log_fatal(error: BaseException) -> None:
    log.error("the model cannot be served: %s", error)


def create_app(settings: ServingSettings, on_fatal: FatalHandler = _log_fatal) -> InferenceEndpoint:
    """An app serving ``settings.model_uri``; live at once, ready once the model is warmed up.

    The model loads in the background after startup. If loading fails (sha256 mismatch
    included) ``on_fatal`` is called and the server never becomes ready; the CLI then exits
    non-zero. Shutdown (after uvicorn has drained HTTP) finishes queued batches and writes the
    payload log.
    """
    metrics = ServingMetrics()
    dataplane = DataPlane(settings, metrics)
    router = Router(settings, dataplane, metrics) if settings.routes_file is not None else None
    explanations = ExplanationService(dataplane) if settings.explain_enabled else None

    async def load() -> None:
        await dataplane.load(on_fatal)
        if explanations is not None:
            await explanations.load()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(load(), name="kubeloop-load-model")
        if router is not None:
            await router.start()
        try:
            yield
        finally:
            if not loading.done():
                log.warning("shutting down while the model is still loading")
                loading.cancel()
            await asyncio.gather(loading, return_exceptions=True)
            if router is not None:
                await router.close()
            await dataplane.close()
            if explanations is not None:
                explanations.close()

    app = FastAPI(
        title="kubeloop inference server",
        summary="Open Inference Protocol v2 over REST for one ONNX model.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.dataplane = dataplane
    install_error_handler(app)
    app.include_router(build_router(dataplane))
    explain = explanations.answer if explanations is not None else None
    return InferenceEndpoint(
        app, dataplane, settings.max_request_bytes, settings.body_timeout_seconds, router, explain
    )
