"""The inference (and explain) endpoints as a plain ASGI layer in front of FastAPI.

``POST /v2/models/{name}[/versions/{version}]/infer`` is the hot path: it skips FastAPI's
router and middleware stack (about a fifth of the CPU per request in the profile of a small
model) and goes straight to the data plane, or to the request router when the server has a routes
file (kubeloop_serving.routing). Every other request goes to the FastAPI app. Errors use the same
``{"error": ...}`` document as the FastAPI handler; every answer names its track (``x-kubeloop-track``).
Explain requests (``/v2/models/{name}[/versions/{version}]/explain``, KServe v1
``/v1/models/{name}:explain``) read their body the same way and are always served here.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, MutableMapping
from typing import TYPE_CHECKING, Any, cast

from kubeloop_serving.answer import (
    HEADER_LENGTH,
    JSON_HEADERS,
    REQUEST_ID,
    Answer,
    failure,
    success,
    track_header,
)
from kubeloop_serving.dataplane import DataPlane
from kubeloop_serving.errors import InvalidRequestError, RequestTimeoutError
from kubeloop_serving.explain.errors import ExplanationsDisabledError

if TYPE_CHECKING:  # the router imports this module's helpers
    from kubeloop_serving.routing.router import Router

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: (model, version or None for KServe v1, body, header length, v1?) -> the JSON answer
ExplainFunction = Callable[[str, str | None, bytes, int | None, bool], Awaitable[bytes]]


def oip_target(path: str, verb: str = "infer") -> tuple[str, str | None] | None:
    """(model, version) for an OIP path ending in ``verb`` (infer, explain), else None."""
    parts = path.split("/")
    if len(parts) == 5 and parts[:3] == ["", "v2", "models"] and parts[4] == verb:
        return parts[3], None
    if len(parts) == 7 and parts[:3] == ["", "v2", "models"] and parts[4] == "versions" and parts[6] == verb:
        return parts[3], parts[5]
    return None


def v1_explain_target(path: str) -> str | None:
    """The model of a KServe v1 ``/v1/models/{name}:explain`` path, else None."""
    parts = path.split("/")
    if len(parts) == 4 and parts[:3] == ["", "v1", "models"] and parts[3].endswith(":explain"):
        return parts[3].removesuffix(":explain") or None
    return None


def infer_target(path: str) -> tuple[str, str | None] | None:
    """(model, version) for an OIP infer path, else None."""
    return oip_target(path, "infer")


def header_value(scope: Scope, name: bytes) -> bytes | None:
    """One request header (names are lower-case in ASGI)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def request_id_header(scope: Scope) -> str | None:
    """The ``x-request-id`` header, if any."""
    raw = header_value(scope, REQUEST_ID)
    return raw.decode("latin-1") if raw is not None else None


def binary_header_length(scope: Scope) -> int | None:
    """``Inference-Header-Content-Length`` as an int, if present (binary tensor extension)."""
    raw = header_value(scope, HEADER_LENGTH)
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise InvalidRequestError(
            f"Inference-Header-Content-Length must be a non-negative integer, got {raw!r}"
        )
    return int(raw)


async def read_body(scope: Scope, receive: Receive, limit: int, timeout_s: float | None = None) -> bytes:
    """The whole request body; 400 over ``limit`` bytes (before reading when declared), 408 when it
    takes longer than ``timeout_s`` to arrive. Nothing reaches the batcher before its body is read.

    A body that is all there when the app is called (uvicorn parses a small request's body before
    the app's task first runs) is taken without arming the timeout: ``asyncio.timeout`` costs a
    timer handle pushed on the loop's heap and cancelled, about a tenth of a small model's CPU per
    request. The timeout covers everything that has to be waited for.
    """
    try:
        declared = header_value(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise InvalidRequestError(f"request body of {int(declared)} bytes exceeds the limit of {limit}")
        message, rest = _step(receive())
        if message is not None and not message.get("more_body", False):
            return _whole(message.get("body", b""), limit)
        async with asyncio.timeout(timeout_s):
            if message is None:
                message = await rest
            return await _read_body(message, receive, limit)
    except TimeoutError:
        raise RequestTimeoutError(f"the request body did not arrive within {timeout_s:g} s") from None


def _whole(body: bytes, limit: int) -> bytes:
    if len(body) > limit:
        raise InvalidRequestError(f"request body exceeds the limit of {limit} bytes")
    return bytes(body)


async def _read_body(message: Message, receive: Receive, limit: int) -> bytes:
    """The body from its first message on."""
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return _whole(body, limit)
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise InvalidRequestError(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _step(awaitable: Awaitable[Message]) -> tuple[Message | None, Awaitable[Message]]:
    """Run a coroutine up to its first wait: (its result, None) when it finished without waiting,
    else (None, the rest of it to await). Any other awaitable is returned as it is, to be awaited."""
    if not isinstance(awaitable, types.CoroutineType):
        return None, awaitable
    try:
        waiting_on = awaitable.send(None)
    except StopIteration as finished:
        return finished.value, awaitable
    return None, _Rest(awaitable, waiting_on)


class _Rest:
    """The rest of a coroutine stepped once and suspended on ``waiting_on``: awaiting it passes what
    the task sends or throws (a cancellation) to the coroutine, as ``await coroutine`` would have."""

    def __init__(self, coroutine: Coroutine[Any, Any, Message], waiting_on: Any) -> None:
        self._coroutine = coroutine
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, Message]:
        coroutine, signal = self._coroutine, self._waiting_on
        while True:
            try:
                sent = yield signal
            except BaseException as error:  # handed on (a cancellation), as ``await`` would
                try:
                    signal = coroutine.throw(error)
                except StopIteration as finished:
                    return cast(Message, finished.value)
            else:
                try:
                    signal = coroutine.send(sent)
                except StopIteration as finished:
                    return cast(Message, finished.value)


class InferenceEndpoint:
    """ASGI app: OIP infer requests to the data plane, everything else to ``fallback`` (FastAPI)."""

    def __init__(
        self,
        fallback: ASGIApp,
        dataplane: DataPlane,
        max_request_bytes: int,
        body_timeout_s: float | None = None,
        router: Router | None = None,
        explain: ExplainFunction | None = None,
    ) -> None:
        self.fallback = fallback
        self.dataplane = dataplane
        self.max_request_bytes = max_request_bytes
        self.body_timeout_s = body_timeout_s
        self.router = router
        self.explain = explain
        self.track = track_header(dataplane.settings.track)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        path = scope["path"]
        target = infer_target(path)
        if target is not None:  # the hot path: parsed first, nothing else on the way
            if scope["method"] == "POST":
                await self.infer(scope, receive, send, target)
            else:
                await method_not_allowed(send)
            return
        explained = oip_target(path, "explain")
        v1_model = v1_explain_target(path) if explained is None else None
        if explained is None and v1_model is None:
            await self.fallback(scope, receive, send)
        elif scope["method"] != "POST":
            await method_not_allowed(send)
        elif explained is not None:
            await self.explain_request(scope, receive, send, explained[0], explained[1], v1=False)
        elif v1_model is not None:
            await self.explain_request(scope, receive, send, v1_model, None, v1=True)

    async def infer(self, scope: Scope, receive: Receive, send: Send, target: tuple[str, str | None]) -> None:
        """Answer one inference request (errors as ``{"error": ...}``)."""
        try:
            header_length = binary_header_length(scope)
            body = await read_body(scope, receive, self.max_request_bytes, self.body_timeout_s)
            if self.router is not None:
                answer = await self.router.infer(scope, target[0], target[1], body, header_length)
            else:
                inference = await self.dataplane.infer(
                    target[0], target[1], body, header_length, request_id=request_id_header(scope)
                )
                answer = success(inference.response, self.track, inference.request_id)
        except Exception as error:
            answer = failure(error, self.track)
        await respond(send, answer.status, answer.headers, answer.body)

    async def explain_request(
        self, scope: Scope, receive: Receive, send: Send, model: str, version: str | None, v1: bool
    ) -> None:
        """Answer one explain request here (never routed): 404 when explanations are off."""
        try:
            if self.explain is None:
                raise ExplanationsDisabledError(
                    "explanations are not enabled on this server (KUBELOOP_SERVING_EXPLAIN_ENABLED, "
                    "spec.explain.enabled of the ModelDeployment)"
                )
            header_length = binary_header_length(scope)
            body = await read_body(scope, receive, self.max_request_bytes, self.body_timeout_s)
            document = await self.explain(model, version, body, header_length, v1)
            answer = Answer(200, [*JSON_HEADERS, self.track], document)
        except Exception as error:
            answer = failure(error, self.track)
        await respond(send, answer.status, answer.headers, answer.body)


async def method_not_allowed(send: Send) -> None:
    await respond(send, 405, [*JSON_HEADERS, (b"allow", b"POST")], b'{"error":"Method Not Allowed"}')


async def respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    """Send a complete response."""
    content_length = (b"content-length", str(len(body)).encode())
    await send({"type": "http.response.start", "status": status, "headers": [*headers, content_length]})
    await send({"type": "http.response.body", "body": body})
