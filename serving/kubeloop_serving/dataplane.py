"""The data plane: what every OIP endpoint does, independent of HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from importlib import metadata
from typing import Any, TypeVar

from kubeloop_serving.attributes import parse_attributes
from kubeloop_serving.batcher import AdaptiveBatcher, SerialRunner
from kubeloop_serving.computed import Computed, Inference
from kubeloop_serving.errors import (
    FeedbackDisabledError,
    LabelSinkError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotReadyError,
    ServingError,
)
from kubeloop_serving.feedback import LabelSink
from kubeloop_serving.ids import new_request_id, resolve_request_id
from kubeloop_serving.loading import LoadedModel, load_model
from kubeloop_serving.metrics import ServingMetrics
from kubeloop_serving.model import onnxruntime_runner
from kubeloop_serving.payload import PayloadLogger
from kubeloop_serving.payload_table import FeatureNaming, PayloadRecord, row_count
from kubeloop_serving.predictions import OutputDistribution
from kubeloop_serving.request import InferenceRequest, decode_request, validate_against
from kubeloop_serving.request_bounds import OFFLOAD_DECODE_BYTES
from kubeloop_serving.response import OutputChoice, choose_outputs, encode_response
from kubeloop_serving.runtime import CPU_PROVIDER
from kubeloop_serving.settings import ServingSettings

log = logging.getLogger(__name__)
SERVER_NAME = "kubeloop"
PLATFORM = "onnxruntime_onnx"
EXTENSIONS = ("binary_tensor_data",)
FatalHandler = Callable[[BaseException], None]
#: nginx's code for a request whose client went away before its answer (a gRPC deadline or cancel):
#: counted as a 500 it read as a server error, to the canary analysis and the error-rate alert alike.
CLIENT_CLOSED_REQUEST = 499
#: Reads the request (whatever its protocol) into arrays; InvalidRequestError when it cannot.
Decoder = Callable[[], Awaitable[InferenceRequest]]
#: What a protocol encodes an inference into.
R = TypeVar("R")


def server_version() -> str:
    """The installed kubeloop version."""
    try:
        return metadata.version("kubeloop")
    except metadata.PackageNotFoundError:
        return "0.0.0"


class DataPlane:
    """Serves one model: metadata, readiness and inference with batching, metrics and payload logs."""

    def __init__(self, settings: ServingSettings, metrics: ServingMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.name = settings.served_model_name
        self._loaded: LoadedModel | None = None
        self._runner: AdaptiveBatcher | SerialRunner | None = None
        self._payload_log: PayloadLogger | None = None
        self._stopping = False
        # counted on the event loop (every protocol's compute runs there), read at scrape time:
        # two locked Gauge updates per request cost more than the plain integer they keep
        self._inflight = 0
        #: In-flight requests counted elsewhere (the native data plane in front), read at scrape time.
        self.extra_inflight: Callable[[], int] = lambda: 0
        metrics.inflight.labels(self.name).set_function(lambda: self._inflight + self.extra_inflight())
        self._request_counters: dict[tuple[str, int], Any] = {}
        self._durations: dict[str, Any] = {}
        self._output_names: list[str] = []
        self._every_output: dict[bool, tuple[OutputChoice, ...]] = {}
        self._distribution = OutputDistribution(metrics.predicted_class, metrics.prediction, self.name)
        self._labels = LabelSink(settings.labels_uri, self.name) if settings.labels_uri else None

    async def load(self, on_fatal: FatalHandler) -> None:
        """Load in a worker thread, then start batching and payload logging; on failure call ``on_fatal``."""
        try:
            loaded = await asyncio.to_thread(load_model, self.settings)
        except ModelLoadError as error:
            log.error("refusing to become ready: %s", error)
            on_fatal(error)
            return
        except Exception as error:
            log.exception("refusing to become ready: unexpected error while loading the model")
            on_fatal(error)
            return
        self._start(loaded)

    def _start(self, loaded: LoadedModel) -> None:
        labels = (self.name, loaded.version)
        self.metrics.model_load.labels(*labels).set(loaded.load_seconds)
        self.metrics.model_info.labels(*labels, loaded.uri_scheme).set(1)
        observe_batch = self.metrics.batch_size.labels(*labels).observe
        run = onnxruntime_runner(loaded.model)
        inline_s = self.settings.inline_run_micros / 1e6
        if loaded.model.signature.batchable and self.settings.max_batch_size > 1:
            wait_s = self.settings.max_batch_wait_ms / 1000
            run_s = self.settings.max_batch_run_ms / 1000
            alone = loaded.threads == 1 and loaded.model.providers == [CPU_PROVIDER]
            batcher = AdaptiveBatcher(
                run, self.settings.max_batch_size, wait_s, observe_batch, inline_s, run_s, cpu_timed=alone
            )
            sizer = batcher.sizer
            self.metrics.batch_limit.labels(*labels).set_function(lambda: sizer.limit)
            self._runner = batcher
        else:
            self._runner = SerialRunner(run, observe_batch, inline_s)
        self._runner.start()
        self._output_names = [spec.name for spec in loaded.model.signature.outputs]
        self._every_output = {
            binary: tuple(choose_outputs(self._output_names, None, binary)) for binary in (False, True)
        }
        self._payload_log = self._start_payload_log(loaded)
        log.info("batching %s", "on" if isinstance(self._runner, AdaptiveBatcher) else "off")
        self._loaded = loaded

    def _start_payload_log(self, loaded: LoadedModel) -> PayloadLogger | None:
        settings = self.settings
        if settings.payload_log_uri is None or not settings.payload_logging_enabled:
            return None
        signature = loaded.model.signature
        first_input = signature.inputs[0].name if signature.inputs else None
        payload_log = PayloadLogger(
            settings.payload_log_uri,
            self.name,
            FeatureNaming(first_input, signature.feature_names or ()),
            queue_size=settings.payload_log_queue_size,
            flush_rows=settings.payload_log_flush_rows,
            flush_seconds=settings.payload_log_flush_seconds,
            on_written=self.metrics.payload_rows.labels(self.name).inc,
            on_dropped=self.metrics.payload_dropped.labels(self.name).inc,
        )
        payload_log.start()
        return payload_log

    async def close(self) -> None:
        """Finish queued inferences, write the payload log, remove a downloaded model (after HTTP drained)."""
        self._stopping = True
        if self._runner is not None:
            await self._runner.close()
        if self._payload_log is not None:
            await asyncio.to_thread(self._payload_log.close, max(self.settings.drain_seconds, 5.0))
        if self._loaded is not None:
            self._loaded.discard_download()

    def arriving(self) -> contextlib.AbstractContextManager[None]:
        """Wrap the decoding of a fully read body: a forming batch may wait briefly for it."""
        runner = self._runner
        return runner.arriving() if runner is not None else contextlib.nullcontext()

    async def decode(self, body: bytes, header_length: int | None) -> InferenceRequest:
        """Decode a complete body; large ones in a worker thread so the event loop keeps serving."""
        limit = self.settings.max_decoded_bytes
        return await self.off_loop_if_large(lambda: decode_request(body, header_length, limit), len(body))

    async def off_loop_if_large(self, decode: Callable[[], InferenceRequest], size: int) -> InferenceRequest:
        """``decode()`` of a ``size``-byte request, in a worker thread when large."""
        if size <= OFFLOAD_DECODE_BYTES:
            return decode()
        with self.arriving():
            return await asyncio.to_thread(decode)

    @property
    def distribution(self) -> OutputDistribution:
        """The counts of the first output's values or classes."""
        return self._distribution

    @property
    def loaded(self) -> LoadedModel | None:
        """The model once loaded and warmed up."""
        return self._loaded

    @property
    def ready(self) -> bool:
        """Model loaded, warmed up, and not shutting down."""
        return self._loaded is not None and not self._stopping

    def server_metadata(self) -> dict[str, Any]:
        """OIP server metadata."""
        return {"name": SERVER_NAME, "version": server_version(), "extensions": list(EXTENSIONS)}

    def model_ready(self, name: str, version: str | None) -> dict[str, Any]:
        """OIP model readiness; ModelNotReadyError while loading."""
        self.served(name, version)
        return {"name": name, "ready": True}

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        """OIP model metadata, read from the ONNX graph (-1 marks dynamic dimensions)."""
        loaded = self.served(name, version)
        signature = loaded.model.signature
        return {
            "name": self.name,
            "versions": [loaded.version],
            "platform": PLATFORM,
            "inputs": [spec.metadata() for spec in signature.inputs],
            "outputs": [spec.metadata() for spec in signature.outputs],
        }

    def served(self, name: str, version: str | None) -> LoadedModel:
        """The loaded model, if ``name`` (and ``version``) are what is served and it is ready."""
        if name != self.name:
            raise ModelNotFoundError(f"model {name!r} is not served here; this server serves {self.name!r}")
        loaded = self._loaded
        if loaded is None or self._stopping:
            raise ModelNotReadyError(f"model {name!r} is not ready")
        if version is not None and version != loaded.version:
            raise ModelNotFoundError(f"model {name!r} has no version {version!r}; served: {loaded.version!r}")
        return loaded

    async def infer(
        self,
        name: str,
        version: str | None,
        body: bytes,
        header_length: int | None,
        track: str | None = None,
        request_id: str | None = None,
    ) -> Inference:
        """Decode, validate, run (batched) and encode one inference request, counting it under
        ``track`` (default: the server's TRACK); ``request_id`` is the ``x-request-id`` header."""
        return await self.compute(
            name, version, lambda: self.decode(body, header_length), self._json_answer, track, request_id
        )

    async def compute(
        self,
        name: str,
        version: str | None,
        decode: Decoder,
        encode: Callable[[Computed], R],
        track: str | None = None,
        request_id: str | None = None,
    ) -> R:
        """One inference whatever the protocol: ``decode`` the request, validate and run it
        (batched), ``encode`` the answer; counted, timed and payload-logged the same for all."""
        loaded = self.served(name, version)
        track = track or self.settings.track
        started = time.perf_counter()
        self._inflight += 1
        code = 500
        try:
            answer = await self._compute(loaded, decode, encode, track, request_id)
            code = 200
            return answer
        except ServingError as error:
            code = error.status_code
            raise
        except asyncio.CancelledError:
            code = CLIENT_CLOSED_REQUEST
            raise
        finally:
            self._inflight -= 1
            self._duration(track, loaded.version).observe(time.perf_counter() - started)
            self._count(track, code, loaded.version)

    async def _compute(
        self,
        loaded: LoadedModel,
        decode: Decoder,
        encode: Callable[[Computed], R],
        track: str,
        header_id: str | None,
    ) -> R:
        runner = self._runner
        if runner is None:
            raise ModelNotReadyError(f"model {self.name!r} is not ready")
        received_ms = time.time_ns() // 1_000_000
        request = await decode()
        signature = loaded.model.signature
        validate_against(request, signature)
        request_id = resolve_request_id(request.id, header_id)
        parameters = request.parameters
        attributes = parse_attributes(parameters, row_count(request.inputs)) if parameters else {}
        rows = next(iter(request.inputs.values())).shape[0] if signature.batchable else 1
        outputs = await runner.infer(request.inputs, rows)
        if request.outputs is None:
            choices: Sequence[OutputChoice] = self._every_output[request.binary_output]
        else:
            requested = [(out.name, out.binary) for out in request.outputs]
            choices = choose_outputs(self._output_names, requested, request.binary_output)
        answer = encode(Computed(request, request_id, loaded.version, outputs, choices, attributes))
        if self._output_names:
            self._distribution.observe(loaded.version, track, outputs[self._output_names[0]])
        if self._payload_log is not None:  # the record is made only where it can be logged
            self.log_payload(
                PayloadRecord(
                    received_ms,
                    request_id,
                    loaded.version,
                    request.inputs,
                    outputs,
                    track,
                    attributes=attributes,
                )
            )
        return answer

    def _json_answer(self, done: Computed) -> Inference:
        response = encode_response(self.name, done.version, done.request_id, done.outputs, done.choices)
        return Inference(
            response, done.request_id, done.version, done.request.inputs, done.outputs, done.attributes
        )

    async def feedback(self, name: str, body: bytes) -> dict[str, int]:
        """Append posted ground truth to the label sink (kubeloop_serving.feedback); ``{"accepted": n}``."""
        if name != self.name:
            raise ModelNotFoundError(f"model {name!r} is not served here; this server serves {self.name!r}")
        if self._labels is None:
            raise FeedbackDisabledError("this server takes no feedback: LABELS_URI is not set")
        try:
            accepted = await self._labels.append(body)
        except ServingError:
            raise
        except Exception as error:
            log.warning("feedback: cannot write labels: %s", error)
            raise LabelSinkError(f"cannot write the labels: {type(error).__name__}: {error}") from None
        self.metrics.feedback_labels.labels(self.name).inc(accepted)
        return {"accepted": accepted}

    def _duration(self, track: str, version: str) -> Any:
        duration = self._durations.get(track)
        if duration is None:
            duration = self._durations[track] = self.metrics.request_duration.labels(
                self.name, version, track
            )
        return duration

    def _count(self, track: str, code: int, version: str) -> None:
        counter = self._request_counters.get((track, code))
        if counter is None:
            counter = self._request_counters[(track, code)] = self.metrics.requests.labels(
                self.name, version, track, str(code)
            )
        counter.inc()

    def log_payload(self, record: PayloadRecord) -> None:
        """Sample ``record`` into the payload log (when on); an empty request id gets a generated one."""
        payload_log = self._payload_log
        if payload_log is None or random.random() >= self.settings.payload_log_sample_rate:
            return
        if not record.request_id:
            record = replace(record, request_id=new_request_id())
        payload_log.submit(record)
