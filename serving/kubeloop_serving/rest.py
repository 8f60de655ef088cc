"""Thin OIP v2 REST endpoints (all but infer, see infer_route): call the data plane, write JSON."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from starlette.exceptions import HTTPException

from kubeloop_serving.dataplane import DataPlane
from kubeloop_serving.errors import InvalidRequestError, ServingError
from kubeloop_serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

log = logging.getLogger(__name__)
JSON = "application/json"


def json_response(document: Any, status_code: int = 200) -> Response:
    """A JSON response serialised with orjson."""
    return Response(orjson.dumps(document), status_code=status_code, media_type=JSON)


def error_document(error: Exception) -> tuple[int, bytes]:
    """The one mapping of errors to responses: ``{"error": "..."}`` and the error's HTTP status."""
    if isinstance(error, ServingError):
        return error.status_code, orjson.dumps({"error": error.message})
    if isinstance(error, HTTPException):
        return error.status_code, orjson.dumps({"error": str(error.detail)})
    log.error("unhandled error: %s", error, exc_info=error)
    return 500, orjson.dumps({"error": f"internal error: {type(error).__name__}"})


async def error_response(_: Request, error: Exception) -> Response:
    """FastAPI's handler for every error type: :func:`error_document` as a response."""
    status, document = error_document(error)
    return Response(document, status_code=status, media_type=JSON)


def build_router(dataplane: DataPlane) -> APIRouter:
    """Routes of the OIP v2 REST API (inference aside) plus /metrics."""
    router = APIRouter()

    @router.get("/v2/health/live")
    async def live() -> Response:
        return json_response({"live": True})

    @router.get("/v2/health/ready")
    async def ready() -> Response:
        return json_response({"ready": dataplane.ready}, 200 if dataplane.ready else 503)

    @router.get("/v2")
    async def server_metadata() -> Response:
        return json_response(dataplane.server_metadata())

    @router.get("/v2/models/{name}")
    async def model_metadata(name: str) -> Response:
        return json_response(dataplane.model_metadata(name, None))

    @router.get("/v2/models/{name}/versions/{version}")
    async def model_version_metadata(name: str, version: str) -> Response:
        return json_response(dataplane.model_metadata(name, version))

    @router.get("/v2/models/{name}/ready")
    async def model_ready(name: str) -> Response:
        return json_response(dataplane.model_ready(name, None))

    @router.get("/v2/models/{name}/versions/{version}/ready")
    async def model_version_ready(name: str, version: str) -> Response:
        return json_response(dataplane.model_ready(name, version))

    @router.post("/v2/models/{name}/feedback")
    async def feedback(name: str, request: Request) -> Response:
        limit = dataplane.settings.max_request_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise InvalidRequestError(f"feedback body of {declared} bytes exceeds the limit of {limit}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise InvalidRequestError(f"feedback body exceeds the limit of {limit} bytes")
        return json_response(await dataplane.feedback(name, bytes(body)))

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(dataplane.metrics.exposition(), media_type=METRICS_CONTENT_TYPE)

    return router


def install_error_handler(app: FastAPI) -> None:
    """Route every error through :func:`error_response`."""
    for error_type in (ServingError, HTTPException, Exception):
        app.add_exception_handler(error_type, error_response)
