"""Leaving a rollout without losing a request: keep-alive clients are moved off before sockets close.

A stopping pod leaves the Service's endpoints at once, but clients with keep-alive connections to it
keep sending on them. Closing an idle connection races with a request already on the wire (the
client sees a reset). So on SIGTERM the server stops accepting, then answers every request on an
existing connection with `Connection: close` (the client reconnects, through the Service, to another
pod) and closes the rest only when none is left or CLOSE_IDLE_AFTER_SECONDS has passed. The same
gate ends connections past their age limit while serving (kubeloop_serving.connections).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Protocol

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kubeloop_serving.connections import ConnectionAges

CLOSE_IDLE_AFTER_SECONDS = 3.0
POLL_SECONDS = 0.05


class ConnectionGate:
    """ASGI wrapper: a response tells its client to close the connection once `draining`, or when the
    connection is past its age limit (``ages``; None: connections never age out)."""

    def __init__(self, app: ASGIApp, ages: ConnectionAges | None = None) -> None:
        self.app = app
        self.ages = ages
        self.draining = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and self._closing(scope):
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing_send)

    def _closing(self, scope: Scope) -> bool:
        return self.draining or (self.ages is not None and self.ages.ending(scope.get("client")))


class Companion(Protocol):
    """Another server in uvicorn's event loop (gRPC): started after it, drained alongside it; or the
    server in front of it (the native data plane): started after it, drained before it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class DrainingServer(uvicorn.Server):
    """uvicorn, with the hand-over above before its own graceful shutdown."""

    def __init__(
        self,
        config: uvicorn.Config,
        gate: ConnectionGate,
        companion: Companion | None = None,
        on_companion_failed: Callable[[BaseException], None] | None = None,
        front: Companion | None = None,
    ) -> None:
        super().__init__(config)
        self.gate = gate
        self.companion = companion
        self.on_companion_failed = on_companion_failed
        self.front = front

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit:
            return
        try:
            for started in (self.companion, self.front):
                if started is not None:
                    await started.start()
        except Exception as error:
            if self.on_companion_failed is not None:
                self.on_companion_failed(error)
            self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.front is not None:
            # The server in front (the native data plane) drains its clients first, forwarding
            # to this one meanwhile: only then does this one stop answering.
            await self.front.stop()
        stopping = asyncio.create_task(self.companion.stop()) if self.companion is not None else None
        for server in self.servers:
            server.close()  # no new connections; the Service sends those elsewhere
        self.gate.draining = True
        deadline = time.monotonic() + CLOSE_IDLE_AFTER_SECONDS
        while self.server_state.connections and time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
        if stopping is not None:
            await stopping  # before the data plane closes (the lifespan shutdown)
        await super().shutdown(sockets)
