"""inference.GRPCInferenceService over the data plane REST uses: same model, batcher, metrics, payload log.

Thin handlers: each RPC calls what its REST route calls, and errors keep REST's message with the
gRPC status code matching REST's HTTP status. On a stable server the routes file (canary, A/B,
shadow) routes ModelInfer calls as it routes REST requests (kubeloop_serving.routing.router); every
ModelInfer answer names the track that computed it in the ``TRACK_HEADER`` trailing metadata.
ModelInfer's request bytes are parsed by the handler, not by grpc, so that a large request is parsed
and decoded off the event loop, as a large REST body is, and a forwarded call goes on as those bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import grpc
from grpc import aio

from kubeloop.contracts.payload_log import REQUEST_ID_HEADER
from kubeloop.contracts.routing import TRACK_HEADER
from kubeloop_serving.computed import Computed
from kubeloop_serving.dataplane import DataPlane
from kubeloop_serving.errors import ServingError
from kubeloop_serving.oip_grpc import grpc_predict_v2_pb2 as pb
from kubeloop_serving.oip_grpc.codec import decode_infer_request, encode_infer_response, parse_infer_request
from kubeloop_serving.oip_grpc.status import STATUS_CODES
from kubeloop_serving.request import InferenceRequest
from kubeloop_serving.routing.router import Router
from kubeloop_serving.routing.shadow import now_ms

log = logging.getLogger(__name__)
SERVICE: Final = "inference.GRPCInferenceService"
Request = TypeVar("Request")
Response = TypeVar("Response")
Handler = Callable[[Request, aio.ServicerContext[Any, Any]], Awaitable[Response]]


def status_of(error: Exception) -> tuple[grpc.StatusCode, str]:
    """The status code and message a failed call ends with (REST's ``{"error": ...}`` text)."""
    if isinstance(error, ServingError):
        return STATUS_CODES.get(error.status_code, grpc.StatusCode.INTERNAL), error.message
    log.error("unhandled error: %s", error, exc_info=error)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(error).__name__}"


def metadata_value(context: aio.ServicerContext[Any, Any], key: str) -> str | None:
    """One invocation metadata entry (keys are lower case in gRPC)."""
    for entry_key, value in context.invocation_metadata() or ():
        if entry_key == key:
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


class InferenceService:
    """The RPCs of inference.GRPCInferenceService."""

    def __init__(self, dataplane: DataPlane, router: Router | None = None) -> None:
        self.dataplane = dataplane
        self.router = router

    async def server_live(self, _: pb.ServerLiveRequest, __: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, _: pb.ServerReadyRequest, __: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.dataplane.ready)

    async def model_ready(self, request: pb.ModelReadyRequest, _: Any) -> pb.ModelReadyResponse:
        """``ready: false`` while loading or draining; NOT_FOUND for a model (version) not served here."""
        if request.name == self.dataplane.name and not self.dataplane.ready:
            return pb.ModelReadyResponse(ready=False)
        self.dataplane.model_ready(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=True)

    async def server_metadata(self, _: pb.ServerMetadataRequest, __: Any) -> pb.ServerMetadataResponse:
        document = self.dataplane.server_metadata()
        return pb.ServerMetadataResponse(
            name=document["name"], version=document["version"], extensions=document["extensions"]
        )

    async def model_metadata(self, request: pb.ModelMetadataRequest, _: Any) -> pb.ModelMetadataResponse:
        document = self.dataplane.model_metadata(request.name, request.version or None)
        return pb.ModelMetadataResponse(
            name=document["name"],
            versions=document["versions"],
            platform=document["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**spec) for spec in document["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**spec) for spec in document["outputs"]],
        )

    async def model_infer(
        self, body: bytes, context: aio.ServicerContext[Any, Any]
    ) -> pb.ModelInferResponse | bytes:
        """One inference, here (raw when the request was, as Triton answers) or by the route the
        routes file picks (its answer or its error, as it gave them)."""
        message = parse_infer_request(body)
        router = self.router
        if router is None:
            context.set_trailing_metadata(((TRACK_HEADER, self.dataplane.settings.track),))
            return (await self._infer(message, body, context, None))[0]
        metadata = tuple(context.invocation_metadata() or ())
        table, pick = router.pick_grpc(metadata, message.model_version or None)
        if pick.route is not None and pick.grpc_target is not None:
            forwarded = await router.forward_grpc(pick.route, pick.grpc_target, body, metadata)
            if forwarded is not None:
                track = ((TRACK_HEADER, pick.route),)
                if forwarded.code != grpc.StatusCode.OK:
                    await context.abort(forwarded.code, forwarded.body.decode("utf-8", "replace"), track)
                context.set_trailing_metadata(track)
                return forwarded.body
        received_ms = now_ms()
        context.set_trailing_metadata(((TRACK_HEADER, pick.track),))
        response, done = await self._infer(message, body, context, pick.track)
        router.mirror_grpc(table, body, metadata, done, received_ms)
        return response

    async def _infer(
        self,
        message: pb.ModelInferRequest,
        body: bytes,
        context: aio.ServicerContext[Any, Any],
        track: str | None,
    ) -> tuple[pb.ModelInferResponse, Computed]:
        limit = self.dataplane.settings.max_decoded_bytes
        raw = len(message.raw_input_contents) > 0

        async def decode() -> InferenceRequest:
            return await self.dataplane.off_loop_if_large(
                lambda: decode_infer_request(message, limit), len(body)
            )

        def encode(done: Computed) -> tuple[pb.ModelInferResponse, Computed]:
            names = [choice.name for choice in done.choices]
            response = encode_infer_response(
                self.dataplane.name, done.version, done.request_id, done.outputs, names, raw
            )
            return response, done

        request_id = metadata_value(context, REQUEST_ID_HEADER)
        return await self.dataplane.compute(
            message.model_name, message.model_version or None, decode, encode, track, request_id
        )


def answering_errors(handler: Handler[Request, Response]) -> Handler[Request, Response]:
    """``handler`` ending a failed call with :func:`status_of` instead of grpc's UNKNOWN."""

    async def call(request: Request, context: aio.ServicerContext[Any, Any]) -> Response:
        try:
            return await handler(request, context)
        except aio.AbortError:  # the handler ended the call itself (a route's error, as it gave it)
            raise
        except Exception as error:
            code, message = status_of(error)
            await context.abort(code, message)
            raise  # abort raises; this line only satisfies the type checker

    return call


def generic_handler(service: InferenceService) -> grpc.GenericRpcHandler:
    """The service's method handlers, under the names its clients call."""

    def unary(
        handler: Handler[Any, Any], request_type: Any, response_type: Any
    ) -> grpc.RpcMethodHandler[Any, Any]:
        return grpc.unary_unary_rpc_method_handler(
            answering_errors(handler),
            request_deserializer=request_type.FromString if request_type is not None else None,
            response_serializer=response_type.SerializeToString,
        )

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "ServerLive": unary(service.server_live, pb.ServerLiveRequest, pb.ServerLiveResponse),
            "ServerReady": unary(service.server_ready, pb.ServerReadyRequest, pb.ServerReadyResponse),
            "ModelReady": unary(service.model_ready, pb.ModelReadyRequest, pb.ModelReadyResponse),
            "ServerMetadata": unary(
                service.server_metadata, pb.ServerMetadataRequest, pb.ServerMetadataResponse
            ),
            "ModelMetadata": unary(service.model_metadata, pb.ModelMetadataRequest, pb.ModelMetadataResponse),
            "ModelInfer": grpc.unary_unary_rpc_method_handler(
                answering_errors(service.model_infer), response_serializer=_serialized_answer
            ),
        },
    )


def _serialized_answer(answer: pb.ModelInferResponse | bytes) -> bytes:
    """A ModelInfer answer computed here, or a route's answer as the bytes it came in."""
    return answer if isinstance(answer, bytes) else answer.SerializeToString()
