"""The gRPC server: started in uvicorn's event loop once REST listens, stopped with it on SIGTERM."""

from __future__ import annotations

import logging
from typing import Final

from grpc import aio

from kubeloop_serving.dataplane import DataPlane
from kubeloop_serving.oip_grpc.service import InferenceService, generic_handler
from kubeloop_serving.routing.router import Router
from kubeloop_serving.settings import ServingSettings

log = logging.getLogger(__name__)
#: Answers may be larger than requests (a model's outputs); only requests are bounded.
UNBOUNDED: Final = -1


class GrpcEndpoint:
    """inference.GRPCInferenceService on ``settings.grpc_port`` over ``dataplane``."""

    def __init__(self, settings: ServingSettings, dataplane: DataPlane, router: Router | None = None) -> None:
        self.settings = settings
        self.dataplane = dataplane
        self.router = router
        self.port: int | None = None
        self._server: aio.Server | None = None

    async def start(self) -> None:
        """Listen; RuntimeError when the port cannot be bound."""
        options: list[tuple[str, int]] = [
            ("grpc.max_receive_message_length", self.settings.max_request_bytes),
            ("grpc.max_send_message_length", UNBOUNDED),
            # grpc sets SO_REUSEPORT by default: a second server on a taken port would share it
            ("grpc.so_reuseport", 0),
        ]
        if self.settings.max_connection_age_seconds:
            # GOAWAY once a connection is this old (grpc adds its own +-10 % jitter); calls running on it
            # finish (no grace limit), new ones go to a new connection: see kubeloop_serving.connections
            age_ms = round(self.settings.max_connection_age_seconds * 1000)
            options.append(("grpc.max_connection_age_ms", age_ms))
        server = aio.server(options=options)
        server.add_generic_rpc_handlers((generic_handler(InferenceService(self.dataplane, self.router)),))
        self.port = server.add_insecure_port(f"{self.settings.host}:{self.settings.grpc_port}")
        await server.start()
        self._server = server
        log.info("OIP v2 gRPC on %s:%d", self.settings.host, self.port)

    async def stop(self) -> None:
        """Refuse new calls (clients move to another pod), let running ones finish within DRAIN_SECONDS."""
        if self._server is not None:
            await self._server.stop(self.settings.drain_seconds)
