"""The native data plane in front of this server (``KUBELOOP_SERVING_DATAPLANE=native``).

``kubeloop-dataplane`` (``dataplane/``, Rust) listens on the server's port and answers OIP v2 JSON
inference requests for numeric models without Python per request: HTTP, JSON and onnxruntime in one
native process. Whatever it cannot answer exactly as this server would (every error, the binary
extension, parameters, BYTES, explanations, feedback, health, metadata, /metrics) it forwards,
unchanged, to this server, which then listens on a loopback port of its own. While this server
routes (its routes file has a canary share, a shadow or an A/B test), inference is forwarded too.

It starts once the model is loaded (the startup probe fails until then, as it does while loading),
with the session options this server uses, and stops first on SIGTERM: it drains its clients while
this server still answers what it forwards. If it exits on its own, this server stops too (the pod
restarts). Its counts join this server's metrics at each scrape (``NativeCounts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import signal
import socket
import urllib.request
from pathlib import Path

import onnxruntime

from kubeloop.contracts.dataplane import ANSWERING_PATH, BINARY, STATS_PATH, DataPlaneEnv, DataPlaneStats
from kubeloop_serving.dataplane import DataPlane, FatalHandler
from kubeloop_serving.errors import ServingError
from kubeloop_serving.loading import LoadedModel
from kubeloop_serving.metrics import LATENCY_BUCKETS, PREDICTION_BUCKETS, ServingMetrics
from kubeloop_serving.predictions import OutputDistribution
from kubeloop_serving.routing import Router
from kubeloop_serving.routing.table import RouteTable
from kubeloop_serving.runtime import CPU_PROVIDER
from kubeloop_serving.settings import ServingSettings

log = logging.getLogger(__name__)
READY_POLL_SECONDS = 0.05
START_TIMEOUT_SECONDS = 60.0
STATS_TIMEOUT_SECONDS = 2.0


class NativeDataPlaneError(ServingError):
    """The native data plane cannot start or stopped on its own."""


def native_wanted(settings: ServingSettings) -> str | None:
    """Why the native data plane is not used with these settings (None: it is)."""
    if settings.dataplane != "native":
        return "DATAPLANE is python"
    if settings.payload_log_uri is not None:
        return "the payload log is on (it is written by the Python data plane)"
    return None


def loopback_port() -> int:
    """A free TCP port on 127.0.0.1 for this server behind the native data plane."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ort_library() -> Path:
    """The onnxruntime shared library of the onnxruntime package this server imports."""
    capi = Path(onnxruntime.__file__).parent / "capi"
    found = sorted(capi.glob("libonnxruntime.so*"))
    if not found:
        raise NativeDataPlaneError(f"no libonnxruntime.so in {capi}")
    return found[-1]


def binary_path(configured: str) -> str:
    found = shutil.which(configured)
    if found is None:
        raise NativeDataPlaneError(f"{configured!r} is not an executable (DATAPLANE_BINARY)")
    return found


class NativeFront:
    """The ``kubeloop-dataplane`` process: started once the model is loaded, stopped first."""

    def __init__(
        self,
        settings: ServingSettings,
        dataplane: DataPlane,
        upstream_port: int,
        on_fatal: FatalHandler,
        router: Router | None = None,
    ) -> None:
        self.settings = settings
        self.dataplane = dataplane
        self.upstream_port = upstream_port
        self.on_fatal = on_fatal
        self.counts = NativeCounts(dataplane.metrics, dataplane.distribution, dataplane.name, settings.track)
        self._address: str | None = None  # set once the process listens
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        dataplane.metrics.before_exposition.append(self.refresh_counts)
        dataplane.extra_inflight = lambda: self.counts.inflight
        # While this server routes (a canary share, a shadow, an A/B test), inference is forwarded
        # to it: the routes are its own, read from the routes file it watches.
        self.answering = True
        self._forward_only = False  # a model on an accelerator: onnxruntime's CPU session is not it
        if router is not None:
            router.table_listeners.append(self._routes_changed)

    def _routes_changed(self, table: RouteTable) -> None:
        self.answering = table.idle and not self._forward_only
        self._tell_answering()

    def _tell_answering(self) -> None:
        """PUT the wanted state (loopback, a millisecond: a blocking call on the rare table change);
        nothing before the process listens (it starts with the state then wanted)."""
        if self._address is None:
            return
        body = json.dumps(self.answering).encode()
        request = urllib.request.Request(self._address + ANSWERING_PATH, body, method="PUT")
        try:
            with urllib.request.urlopen(request, timeout=STATS_TIMEOUT_SECONDS):
                log.info("native data plane %s inference", "answers" if self.answering else "forwards all")
        except OSError as error:  # it is gone: _run stops this server
            log.error("cannot tell the native data plane to %s: %s", body.decode(), error)

    async def start(self) -> None:
        """Start the process in the background once the model is loaded (the Companion protocol)."""
        self._task = asyncio.create_task(self._run(), name="kubeloop-native-dataplane")

    async def _run(self) -> None:
        try:
            loaded = await self._loaded()
            if loaded is None:
                return
            self.counts.version = loaded.version
            self._process = await self._spawn(loaded)
            await self._wait_listening(self._process)
            self._tell_answering()  # the routes may have changed while it started
            log.info("native data plane serving on port %d", self.settings.port)
            code = await self._process.wait()
            if not self._stopping:
                raise NativeDataPlaneError(f"{BINARY} exited with code {code}")
        except NativeDataPlaneError as error:
            log.error("%s", error)
            self.on_fatal(error)

    async def _loaded(self) -> LoadedModel | None:
        while (loaded := self.dataplane.loaded) is None:
            if self._stopping:
                return None
            await asyncio.sleep(READY_POLL_SECONDS)
        if loaded.model.providers != [CPU_PROVIDER]:
            log.warning(
                "the native data plane forwards every request: the model runs on %s", loaded.model.providers
            )
            self._forward_only, self.answering = True, False
        return loaded

    def environment(self, loaded: LoadedModel) -> DataPlaneEnv:
        settings = self.settings
        return DataPlaneEnv(
            model_path=loaded.path,
            model_name=self.dataplane.name,
            model_version=loaded.version,
            track=settings.track,
            host=settings.host,
            port=settings.port,
            upstream=f"http://127.0.0.1:{self.upstream_port}",
            ort_library=str(ort_library()),
            intra_op_threads=loaded.threads,
            max_request_bytes=settings.max_request_bytes,
            drain_seconds=settings.drain_seconds,
            body_timeout_seconds=settings.body_timeout_seconds,
            max_connection_age_seconds=settings.max_connection_age_seconds,
            answering=self.answering,
        )

    async def _spawn(self, loaded: LoadedModel) -> asyncio.subprocess.Process:
        binary = binary_path(self.settings.dataplane_binary)
        environment = {"PATH": "/usr/bin:/bin", **self.environment(loaded).to_env()}
        return await asyncio.create_subprocess_exec(binary, env=environment)

    async def _wait_listening(self, process: asyncio.subprocess.Process) -> None:
        host = "127.0.0.1" if self.settings.host in ("0.0.0.0", "") else self.settings.host
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_SECONDS
        while process.returncode is None:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(host, self.settings.port)
                writer.close()
                self._address = f"http://{host}:{self.settings.port}"
                return
            if asyncio.get_running_loop().time() > deadline:
                raise NativeDataPlaneError(f"{BINARY} did not listen on port {self.settings.port}")
            await asyncio.sleep(READY_POLL_SECONDS)
        raise NativeDataPlaneError(f"{BINARY} exited with code {process.returncode} while starting")

    async def stop(self) -> None:
        """SIGTERM: the process drains its clients (forwarding to this server meanwhile) and exits."""
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), self.settings.drain_seconds + 5)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    def refresh_counts(self) -> None:
        """Add what the process answered since the last scrape to this server's metrics."""
        if self._address is None:
            return
        try:
            with urllib.request.urlopen(self._address + STATS_PATH, timeout=STATS_TIMEOUT_SECONDS) as answer:
                self.counts.add(DataPlaneStats.from_json(answer.read()))
        except (OSError, ValueError) as error:
            log.warning("cannot read the native data plane's counts: %s", error)


class NativeCounts:
    """The native data plane's cumulative counts, added to this server's series as they grow."""

    def __init__(
        self, metrics: ServingMetrics, distribution: OutputDistribution, model: str, track: str
    ) -> None:
        self.metrics = metrics
        self.distribution = distribution
        self.model = model
        self.track = track
        self.version = ""  # the loaded model's, set before the process starts
        self.inflight = 0
        self._last = DataPlaneStats.zero(LATENCY_BUCKETS, PREDICTION_BUCKETS)

    def add(self, stats: DataPlaneStats) -> None:
        """Add the growth since the last ``stats`` (one process, whose counts only grow: when it
        exits, this server stops)."""
        if stats.duration.bounds != LATENCY_BUCKETS or stats.prediction.bounds != PREDICTION_BUCKETS:
            raise ValueError("the native data plane's buckets are not this server's")
        last, self._last, self.inflight = self._last, stats, stats.inflight
        if stats.requests == last.requests:
            return
        labels = (self.model, self.version, self.track)
        self.metrics.requests.labels(*labels, "200").inc(stats.requests - last.requests)
        duration = self.metrics.request_duration.labels(*labels)
        # prometheus_client has no public way to add counts made elsewhere to a Histogram
        for bucket, now, before in zip(
            duration._buckets, stats.duration.counts, last.duration.counts, strict=True
        ):
            bucket.inc(now - before)
        duration._sum.inc(stats.duration.sum - last.duration.sum)
        grown = [
            now - before for now, before in zip(stats.prediction.counts, last.prediction.counts, strict=True)
        ]
        if any(grown):
            self.metrics.prediction.add(labels, grown, stats.prediction.sum - last.prediction.sum)
        classes = {label: count - last.classes.get(label, 0) for label, count in stats.classes.items()}
        self.distribution.add_classes(self.version, self.track, classes)
