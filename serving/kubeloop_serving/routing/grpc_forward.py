"""Forward an OIP gRPC ModelInfer call, as the bytes it came in, to another server's gRPC port.

One channel (one HTTP/2 connection) per target, opened on first use and kept: the targets are the
tracks' ClusterIP Services, so a stable pod's calls to a track go to one of its pods until the
connection ends (the servers' MAX_CONNECTION_AGE_SECONDS moves it on). Answers are reported as
REST's would be: the HTTP status of the gRPC code (the route counters and the shadow's counts
stay one series for both protocols), with the code itself kept to end the caller's call with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import grpc
from grpc import aio

from kubeloop.contracts.routing import FORWARDED_HEADER
from kubeloop_serving.oip_grpc.status import HTTP_STATUS
from kubeloop_serving.routing.forward import UnreachableError

MODEL_INFER: Final = "/inference.GRPCInferenceService/ModelInfer"
#: Metadata that belongs to one call or connection, which grpc sets itself.
_NOT_FORWARDED: Final = ("user-agent", "te", "content-type", "grpc-", ":", FORWARDED_HEADER)
Metadata = Sequence[tuple[str, str | bytes]]


@dataclass(frozen=True)
class GrpcForwarded:
    """The route's answer: ``status`` as REST's, ``body`` the response bytes (OK) or the message."""

    status: int
    code: grpc.StatusCode
    body: bytes


def forwarded_metadata(metadata: Metadata, forwarded_by: str) -> list[tuple[str, str | bytes]]:
    """The call's own metadata, marked as forwarded so the receiver never forwards again."""
    kept = [(key, value) for key, value in metadata if not key.startswith(_NOT_FORWARDED)]
    return [*kept, (FORWARDED_HEADER, forwarded_by)]


class GrpcForwarder:
    """Channels to the routes' gRPC targets; ``call`` forwards one ModelInfer."""

    def __init__(self, connect_timeout_s: float, timeout_s: float) -> None:
        self._connect_ms = max(1, round(connect_timeout_s * 1000))
        self._timeout_s = timeout_s
        self._channels: dict[str, aio.Channel] = {}

    def _channel(self, target: str) -> aio.Channel:
        channel = self._channels.get(target)
        if channel is None:
            options = [
                ("grpc.max_receive_message_length", -1),
                ("grpc.max_send_message_length", -1),
                # the longest a connection attempt (TCP and HTTP/2 handshake) may take: a route that
                # does not answer then fails the call at once (UNAVAILABLE) instead of at its deadline
                ("grpc.min_reconnect_backoff_ms", self._connect_ms),
                # grpc's default backoff grows to 2 minutes: a canary that starts late would miss them
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", max(2000, self._connect_ms)),
            ]
            channel = self._channels[target] = aio.insecure_channel(target, options=options)
        return channel

    async def call(self, target: str, body: bytes, metadata: Metadata) -> GrpcForwarded:
        """The target's answer to ModelInfer ``body``; UnreachableError when it gave none."""
        channel = self._channel(target)
        infer = channel.unary_unary(MODEL_INFER)  # no serializers: bytes in, bytes out
        try:
            answer: bytes = await infer(body, metadata=metadata, timeout=self._timeout_s)
        except aio.AioRpcError as error:
            code = error.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise UnreachableError("timeout", error.details() or "deadline exceeded") from None
            if code == grpc.StatusCode.UNAVAILABLE and channel.get_state() != grpc.ChannelConnectivity.READY:
                raise UnreachableError("connect", error.details() or "unavailable") from None
            return GrpcForwarded(HTTP_STATUS.get(code, 500), code, (error.details() or "").encode())
        return GrpcForwarded(200, grpc.StatusCode.OK, answer)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels = {}
