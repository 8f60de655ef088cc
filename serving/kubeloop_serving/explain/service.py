"""Explain requests: decoded like infer requests, computed in their own thread, counted in metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, get_args

import numpy as np
import numpy.typing as npt
import orjson

from kubeloop_serving.dataplane import DataPlane
from kubeloop_serving.errors import InvalidRequestError, ServingError
from kubeloop_serving.explain.agnostic import PACKAGES
from kubeloop_serving.explain.background import load_background
from kubeloop_serving.explain.errors import ExplainerUnavailableError, ExplanationsDisabledError
from kubeloop_serving.explain.explainers import Explainers, Explanation, Method, model_target
from kubeloop_serving.loading import LoadedModel
from kubeloop_serving.request import validate_against

log = logging.getLogger(__name__)
METHOD_PARAMETER = "method"
BUDGET_PARAMETER = "budget"


@dataclass(frozen=True)
class ExplainRequest:
    """A decoded explain request: the rows of the model's one input and the request's parameters."""

    loaded: LoadedModel
    explainers: Explainers
    x: npt.NDArray[Any]
    parameters: dict[str, Any]
    request_id: str | None


class ExplanationService:
    """Explainers for the served model, built after it loads; one explanation at a time.

    Explanations run in a dedicated worker thread, never on the event loop, so infer requests and
    health checks keep being answered while one is computed (onnxruntime and NumPy release the GIL).
    """

    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane
        self.settings = dataplane.settings
        self.metrics = dataplane.metrics
        self._explainers: Explainers | None = None
        self._problem = "the explainer is still loading"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kubeloop-explain")

    async def load(self) -> None:
        """Build the explainers for the loaded model (background fetched and sampled) off the loop."""
        loaded = self.dataplane.loaded
        if loaded is None:
            self._problem = "the model did not load"
            return
        loop = asyncio.get_running_loop()
        try:
            self._explainers = await loop.run_in_executor(self._executor, self._build, loaded)
        except ServingError as error:
            self._problem = error.message
        except Exception as error:  # reported on every explain request, never fatal for inference
            self._problem = f"cannot build the explainer: {type(error).__name__}: {error}"
        if self._explainers is None:
            log.error("explanations unavailable: %s", self._problem)
        else:
            log.info(
                "explanations ready: %s by default, %s available",
                self._explainers.default,
                ", ".join(self._explainers.available()),
            )

    def _build(self, loaded: LoadedModel) -> Explainers:
        settings = self.settings
        target = model_target(loaded.model.signature)
        assert settings.explain_background_uri is not None  # the settings refuse enabled without it
        background = load_background(
            settings.explain_background_uri,
            loaded.model.signature.feature_names,
            target.n_features,
            settings.explain_background_rows,
        )
        return Explainers.build(loaded.path, loaded.model, background, settings.explain_method)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def answer(
        self, name: str, version: str | None, body: bytes, header_length: int | None, v1: bool
    ) -> bytes:
        """The endpoint: an OIP v2 explain request (KServe v1 when ``v1``) in, the JSON answer out.
        Every request is counted, by the method it asked for (else the default) and its status."""
        started = time.perf_counter()
        method: str = (
            self._explainers.default if self._explainers is not None else self.settings.explain_method
        )
        code = 500
        try:
            request = await (
                self._decode_v1(name, body) if v1 else self._decode(name, version, body, header_length)
            )
            method = requested_method(request.parameters, request.explainers)
            settings = self.settings
            budget = requested_budget(
                request.parameters, settings.explain_budget, settings.explain_max_budget
            )
            rows = len(request.x)
            if rows > settings.explain_max_rows:
                raise InvalidRequestError(
                    f"{rows} rows exceed the {settings.explain_max_rows} rows one explain request may carry"
                )
            loop = asyncio.get_running_loop()
            explanation = await loop.run_in_executor(
                self._executor, request.explainers.explain, request.x, method, budget
            )
            code = 200
            self.metrics.explained_rows.labels(self.dataplane.name, method).inc(rows)
            return encode_explanation(self.dataplane.name, request, explanation, budget)
        except ServingError as error:
            code = error.status_code
            raise
        finally:
            model = self.dataplane.name
            self.metrics.explanations.labels(model, method, str(code)).inc()
            self.metrics.explain_duration.labels(model, method).observe(time.perf_counter() - started)

    async def _decode(
        self, name: str, version: str | None, body: bytes, header_length: int | None
    ) -> ExplainRequest:
        """OIP v2: the infer request body, decoded and validated as infer does."""
        loaded = self.dataplane.served(name, version)
        explainers = self._ready()
        request = await self.dataplane.decode(body, header_length)
        validate_against(request, loaded.model.signature)
        x = request.inputs[explainers.target.input_name]
        return ExplainRequest(loaded, explainers, x, request.parameters, request.id)

    async def _decode_v1(self, name: str, body: bytes) -> ExplainRequest:
        """KServe v1 ``:explain``: ``{"instances": [[...], ...]}`` rows of the one input."""
        loaded = self.dataplane.served(name, None)
        explainers = self._ready()
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise InvalidRequestError(f"request is not valid JSON: {error}") from None
        if not isinstance(document, dict) or not isinstance(document.get("instances"), list):
            raise InvalidRequestError('a v1 explain request is {"instances": [[feature values], ...]}')
        try:
            x = np.asarray(document["instances"], dtype=np.float64)
        except (ValueError, TypeError):
            raise InvalidRequestError("instances must be rows of numbers, all of the same length") from None
        width = explainers.target.n_features
        if x.ndim != 2 or x.shape[1] != width:
            raise InvalidRequestError(f"instances must be rows of {width} numbers, got shape {list(x.shape)}")
        parameters = document.get("parameters", {})
        if not isinstance(parameters, dict):
            raise InvalidRequestError("parameters must be a JSON object")
        return ExplainRequest(loaded, explainers, x, parameters, None)

    def _ready(self) -> Explainers:
        if not self.settings.explain_enabled:
            raise ExplanationsDisabledError(
                "explanations are not enabled on this server (KUBELOOP_SERVING_EXPLAIN_ENABLED, "
                "spec.explain.enabled of the ModelDeployment)"
            )
        if self._explainers is None:
            raise ExplainerUnavailableError(f"explanations are unavailable: {self._problem}")
        return self._explainers


def requested_method(parameters: dict[str, Any], explainers: Explainers) -> Method:
    """``parameters.method`` when given and available, else the server's default."""
    method = parameters.get(METHOD_PARAMETER)
    if method is None:
        return explainers.default
    available = explainers.available()
    if method not in get_args(Method):
        raise InvalidRequestError(f"parameters.method must be one of {list(available)}, got {method!r}")
    if method in PACKAGES and method not in available:  # a method we have, a package this image lacks
        raise ExplainerUnavailableError(
            f"{method} explanations need the {PACKAGES[method]} package, not installed here: "
            "pip install 'kubeloop[explain]' (or the kubeloop image built with the explain extra)"
        )
    if method not in available:
        raise InvalidRequestError(f"parameters.method must be one of {list(available)}, got {method!r}")
    chosen: Method = method
    return chosen


def requested_budget(parameters: dict[str, Any], default: int, maximum: int) -> int:
    """``parameters.budget`` (model evaluations per row) when given, else ``default``."""
    budget = parameters.get(BUDGET_PARAMETER, default)
    if not isinstance(budget, int) or isinstance(budget, bool) or not 1 <= budget <= maximum:
        raise InvalidRequestError(f"parameters.budget must be an integer from 1 to {maximum}, got {budget!r}")
    return budget


def encode_explanation(model: str, request: ExplainRequest, explanation: Explanation, budget: int) -> bytes:
    """The answer document: ``values`` [rows][features][outputs], ``base_values`` [rows][outputs]."""
    explainers = request.explainers
    document: dict[str, Any] = {"model_name": model, "model_version": request.loaded.version}
    if request.request_id is not None:
        document["id"] = request.request_id
    document.update(
        method=explanation.method,
        output=explainers.target.output_name if explanation.method != "tree" else "raw_score",
        output_space=explanation.output_space,
        feature_names=list(explainers.target.feature_names),
        output_names=list(explanation.output_names),
        base_values=np.ascontiguousarray(explanation.base_values),
        values=np.ascontiguousarray(explanation.values),
    )
    if explanation.post_transform is not None:
        document["post_transform"] = explanation.post_transform
    if explanation.method != "tree":
        document["budget"] = budget
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
