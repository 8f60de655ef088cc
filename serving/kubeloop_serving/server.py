"""Run the app under uvicorn (uvloop + httptools when installed), one worker process."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import signal
import threading
from collections.abc import Iterator

import uvicorn

from kubeloop_serving.app import create_app
from kubeloop_serving.connections import ConnectionAges
from kubeloop_serving.drain import ConnectionGate, DrainingServer
from kubeloop_serving.infer_route import InferenceEndpoint
from kubeloop_serving.native import NativeFront, loopback_port, native_wanted
from kubeloop_serving.oip_grpc.endpoint import GrpcEndpoint
from kubeloop_serving.settings import ServingSettings

log = logging.getLogger(__name__)
EXIT_OK = 0
EXIT_FAILED = 1
DRAIN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def fastest_available(preferred: str, fallback: str) -> str:
    """``preferred`` when that module is importable, else ``fallback``."""
    return preferred if importlib.util.find_spec(preferred) is not None else fallback


def uvicorn_config(
    settings: ServingSettings, app: InferenceEndpoint | ConnectionGate, behind_port: int | None = None
) -> uvicorn.Config:
    """uvicorn settings for serving: one worker, no access log, graceful drain of DRAIN_SECONDS; on
    127.0.0.1:``behind_port`` behind the native data plane."""
    return uvicorn.Config(
        app,
        host=settings.host if behind_port is None else "127.0.0.1",
        port=settings.port if behind_port is None else behind_port,
        loop=fastest_available("uvloop", "asyncio"),
        http=fastest_available("httptools", "h11"),
        workers=1,
        lifespan="on",
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=math.ceil(settings.drain_seconds),
        timeout_keep_alive=75,
    )


@contextlib.contextmanager
def drained_signals_end_cleanly() -> Iterator[None]:
    """Ignore the SIGTERM/SIGINT that uvicorn re-raises after its graceful drain, so we can exit 0.

    uvicorn handles the signal itself (stop accepting, finish in-flight requests, run the
    lifespan shutdown), then restores the previous handlers and raises the signal again; the
    previous handler installed here swallows that second delivery.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in DRAIN_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class ServingServer:
    """The app and its uvicorn server; a failed model load stops the server with a non-zero code."""

    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.fatal: BaseException | None = None
        self.app = create_app(settings, on_fatal=self._stop_on_fatal)
        self.grpc = (
            GrpcEndpoint(settings, self.app.dataplane, self.app.router) if settings.grpc_port else None
        )
        not_native = native_wanted(settings)
        if settings.dataplane == "native" and not_native is not None:
            log.warning("serving with the Python data plane: %s", not_native)
        self.native: NativeFront | None = None
        behind_port = None
        if not_native is None:
            behind_port = loopback_port()
            self.native = NativeFront(
                settings, self.app.dataplane, behind_port, self._stop_on_fatal, self.app.router
            )
        # Behind the native data plane, connections come from its pool: it ages its clients' own.
        age = settings.max_connection_age_seconds if self.native is None else 0
        gate = ConnectionGate(self.app, ConnectionAges(age) if age else None)
        config = uvicorn_config(settings, gate, behind_port)
        self.uvicorn = DrainingServer(config, gate, self.grpc, self._grpc_failed, self.native)

    def _stop_on_fatal(self, error: BaseException) -> None:
        self.fatal = error
        self.uvicorn.should_exit = True

    def _grpc_failed(self, error: BaseException) -> None:
        log.error("cannot serve gRPC on port %d: %s", self.settings.grpc_port, error)
        self.fatal = error

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (or ``request_stop``); 0 after a clean drain, 1 on failure."""
        with drained_signals_end_cleanly():
            self.uvicorn.run()
        if self.fatal is not None:  # the last line: a pod's termination message is its log's tail
            log.error("exiting: %s", self.fatal)
        if self.fatal is not None or not self.uvicorn.started:
            return EXIT_FAILED
        return EXIT_OK

    def request_stop(self) -> None:
        """Begin a graceful shutdown, as SIGTERM does (safe from another thread)."""
        self.uvicorn.should_exit = True

    @property
    def port(self) -> int | None:
        """The bound TCP port once started (useful with PORT=0)."""
        for server in getattr(self.uvicorn, "servers", []):
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return None

    @property
    def grpc_port(self) -> int | None:
        """The bound gRPC port once started; None when gRPC is off."""
        return self.grpc.port if self.grpc is not None else None
