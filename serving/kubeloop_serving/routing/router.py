"""The stable server's request routing: canary split, A/B variants and shadow, in front of the data plane.

Per request (OIP infer, REST or gRPC ModelInfer): a request that was already forwarded
(``FORWARDED_HEADER``) or that names a model version is served here, untouched. Otherwise the
canary counter (or the A/B variant: sticky by the hash of its header, else by the counter) picks
where it goes, the same counters for both protocols; a gRPC call goes to the route's
``grpc_target`` (served here when the route has none). A route that cannot be reached, or that
answers 503 / UNAVAILABLE (not ready, draining), is skipped and the request served here (a
fallback); any other answer, 5xx included, is returned as it is: that is the route's behaviour.
Requests answered here are copied to the shadow by its counter, over the protocol they came in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol, TypeVar

from kubeloop.contracts.routing import FORWARDED_HEADER
from kubeloop_serving.answer import Answer, failure, success, track_header
from kubeloop_serving.dataplane import DataPlane
from kubeloop_serving.infer_route import Scope, header_value, request_id_header
from kubeloop_serving.metrics import ServingMetrics
from kubeloop_serving.routing.forward import Forwarder, UnreachableError, forwarded_headers
from kubeloop_serving.routing.grpc_forward import GrpcForwarded, GrpcForwarder, Metadata, forwarded_metadata
from kubeloop_serving.routing.shadow import Answered, ShadowCopy, ShadowMirror, now_ms
from kubeloop_serving.routing.split import bucket_of
from kubeloop_serving.routing.table import RoutesFile, RouteTable
from kubeloop_serving.settings import ServingSettings

log = logging.getLogger(__name__)
CANARY = "canary"
_FORWARDED = FORWARDED_HEADER.encode()
_NOT_READY = 503


class _Answer(Protocol):
    @property
    def status(self) -> int: ...


A = TypeVar("A", bound=_Answer)


class Pick(NamedTuple):
    """Where one request goes: ``route`` (its name, REST url and gRPC target), or here as ``track``."""

    track: str
    route: str | None = None
    url: str | None = None
    grpc_target: str | None = None


class Router:
    """Routes inference requests by the table in ``settings.routes_file``; start/close on the loop."""

    def __init__(self, settings: ServingSettings, dataplane: DataPlane, metrics: ServingMetrics) -> None:
        assert settings.routes_file is not None
        self.dataplane = dataplane
        self.metrics = metrics
        self.model = dataplane.name
        self.track = settings.track
        self.routes = RoutesFile(
            settings.routes_file, self._publish, metrics.routes_reload_errors.labels(self.model).inc,
            settings.routes_poll_seconds,
        )  # fmt: skip
        self.forwarder = Forwarder(settings.forward_connect_timeout_seconds, settings.forward_timeout_seconds)
        self.grpc_forwarder = GrpcForwarder(
            settings.forward_connect_timeout_seconds, settings.forward_timeout_seconds
        )
        self.shadow = ShadowMirror(
            metrics,
            self.model,
            dataplane.log_payload,
            concurrency=settings.shadow_concurrency,
            connect_timeout_s=settings.forward_connect_timeout_seconds,
            timeout_s=settings.forward_timeout_seconds,
            max_decoded_bytes=settings.max_decoded_bytes,
        )
        self._watch: asyncio.Task[None] | None = None
        self._labels: dict[tuple[str, ...], Any] = {}
        #: Called with each table put in effect (the native data plane forwards while one routes).
        self.table_listeners: list[Callable[[RouteTable], None]] = []
        metrics.routes_generation.labels(self.model).set(-1)

    async def start(self) -> None:
        """Read the routes file, then watch it; start the shadow's workers."""
        self.routes.check()
        self._watch = asyncio.create_task(self.routes.watch(), name="kubeloop-routes-watch")
        self.shadow.start()

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self.shadow.close()
        await self.forwarder.close()
        await self.grpc_forwarder.close()

    def _publish(self, table: RouteTable) -> None:
        routes, weight = table.routes, self.metrics.route_weight
        weight.clear()
        if routes.canary is not None:
            weight.labels(self.model, CANARY).set(routes.canary.weight_percent)
        if routes.shadow is not None:
            weight.labels(self.model, "shadow").set(routes.shadow.percent)
        for variant in routes.ab.variants if routes.ab is not None else ():
            weight.labels(self.model, variant.name).set(variant.weight_percent)
        self.metrics.routes_generation.labels(self.model).set(routes.generation)
        for listener in self.table_listeners:
            listener(table)

    async def infer(
        self, scope: Scope, model: str, version: str | None, body: bytes, header_length: int | None
    ) -> Answer:
        """The answer to one inference request, from here or from the route it was given."""
        table = self.routes.table
        if version is not None or header_value(scope, _FORWARDED) is not None:
            return await self._local(model, version, body, header_length, self.track, table, scope)
        pick = self._pick(table, header_value(scope, table.ab_header) if table.ab_buckets else None)
        if pick.route is not None and pick.url is not None:
            answer = await self._forward(pick.route, pick.url, scope, body)
            if answer is not None:
                return answer
        return await self._local(model, version, body, header_length, pick.track, table, scope)

    def pick_grpc(self, metadata: Metadata, version: str | None) -> tuple[RouteTable, Pick]:
        """The table in effect and where a gRPC ModelInfer call with ``metadata`` goes."""
        table = self.routes.table
        if version is not None or _value(metadata, FORWARDED_HEADER) is not None:
            return table, Pick(self.track)
        key = _value(metadata, table.ab_header.decode()) if table.ab_buckets else None
        return table, self._pick(table, key)

    def _pick(self, table: RouteTable, key: bytes | None) -> Pick:
        if table.canary is not None and table.canary.pick() and table.routes.canary is not None:
            canary = table.routes.canary
            return Pick(self.track, CANARY, canary.url, canary.grpc_target)
        if table.ab_counter is not None and table.ab_buckets is not None:
            variant = table.ab_buckets[bucket_of(key)] if key is not None else table.ab_counter.pick()
            if variant.url is None:
                return Pick(table.ab_local)
            return Pick(table.ab_local, variant.name, variant.url, variant.grpc_target)
        return Pick(self.track)

    async def forward_grpc(
        self, route: str, target: str, body: bytes, metadata: Metadata
    ) -> GrpcForwarded | None:
        """The route's answer to a gRPC ModelInfer, or None (a counted fallback: serve it here)."""
        forwarded = forwarded_metadata(metadata, self.track)
        return await self._routed(route, lambda: self.grpc_forwarder.call(target, body, forwarded))

    def mirror_grpc(
        self, table: RouteTable, body: bytes, metadata: Metadata, stable: Answered, received_ms: int
    ) -> None:
        """Copy a gRPC call answered here to the shadow's gRPC port, by the shadow's counter."""
        shadow = table.routes.shadow
        if table.shadow is None or shadow is None or shadow.grpc_target is None or not table.shadow.pick():
            return
        copy = ShadowCopy(
            shadow.grpc_target, body, forwarded_metadata(metadata, self.track), stable, received_ms, grpc=True
        )
        self.shadow.submit(copy, shadow.queue_size)

    async def _local(
        self,
        model: str,
        version: str | None,
        body: bytes,
        header_length: int | None,
        track: str,
        table: RouteTable,
        scope: Scope,
    ) -> Answer:
        received_ms = now_ms()
        try:
            inference = await self.dataplane.infer(
                model, version, body, header_length, track, request_id_header(scope)
            )
        except Exception as error:
            return failure(error, track_header(track))
        shadow = table.routes.shadow
        if table.shadow is not None and shadow is not None and table.shadow.pick():
            headers = forwarded_headers(scope["headers"], self.track)
            url = _infer_url(shadow.url, scope)
            self.shadow.submit(ShadowCopy(url, body, headers, inference, received_ms), shadow.queue_size)
        return success(inference.response, track_header(track), inference.request_id)

    async def _forward(self, route: str, base_url: str, scope: Scope, body: bytes) -> Answer | None:
        """The route's answer, or None (a counted fallback) when it gave none or was not ready."""
        url, headers = _infer_url(base_url, scope), forwarded_headers(scope["headers"], self.track)
        forwarded = await self._routed(route, lambda: self.forwarder.post(url, body, headers))
        if forwarded is None:
            return None
        return Answer(forwarded.status, [*forwarded.headers, track_header(route)], forwarded.body)

    async def _routed(self, route: str, send: Callable[[], Awaitable[A]]) -> A | None:
        """``send``'s answer, counted and timed, or None when the route gave none or was not ready."""
        started = time.perf_counter()
        try:
            forwarded = await send()
        except UnreachableError as error:
            log.debug("route %s: serving here: %s", route, error)
            self._counter("routed", route, "error").inc()
            self._counter("fallback", route, error.reason).inc()
            return None
        self._counter("duration", route).observe(time.perf_counter() - started)
        self._counter("routed", route, str(forwarded.status)).inc()
        if forwarded.status == _NOT_READY:
            self._counter("fallback", route, "unavailable").inc()
            return None
        return forwarded

    def _counter(self, kind: str, *labels: str) -> Any:
        key = (kind, *labels)
        child = self._labels.get(key)
        if child is None:
            metric = {
                "routed": self.metrics.routed,
                "fallback": self.metrics.route_fallbacks,
                "duration": self.metrics.forward_duration,
            }[kind]
            child = self._labels[key] = metric.labels(self.model, *labels)
        return child


def _value(metadata: Metadata, key: str) -> bytes | None:
    """One gRPC metadata entry as bytes, as an HTTP header value is (keys are lower case in gRPC)."""
    for entry_key, value in metadata:
        if entry_key == key:
            return value if isinstance(value, bytes) else value.encode("latin-1")
    return None


def _infer_url(base_url: str, scope: Scope) -> str:
    query = scope.get("query_string", b"")
    suffix = f"?{query.decode('latin-1')}" if query else ""
    return f"{base_url.rstrip('/')}{scope['path']}{suffix}"
