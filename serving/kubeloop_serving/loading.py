"""Fetch, verify, load and warm up the model: everything that must succeed before ready."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from kubeloop_serving.model import OnnxModel
from kubeloop_serving.runtime import container_cpu_limit, intra_op_threads
from kubeloop_serving.scratch import Scratch, claim
from kubeloop_serving.settings import ServingSettings
from kubeloop_serving.storage import fetch_model, uri_scheme, verify_sha256

log = logging.getLogger(__name__)
DEFAULT_VERSION = "1"


@dataclass(frozen=True)
class LoadedModel:
    """A warmed-up model and the facts the server reports about it."""

    model: OnnxModel
    version: str
    uri_scheme: str
    sha256: str
    threads: int
    load_seconds: float
    path: str = ""  # the local ONNX file (explanations read the graph itself)
    download: Scratch | None = None  # where a remote model was downloaded to, removed by discard_download()

    def discard_download(self) -> None:
        """Remove the downloaded copy (on shutdown; a local model's file is left alone)."""
        if self.download is not None:
            self.download.remove()


def load_model(settings: ServingSettings) -> LoadedModel:
    """Blocking: fetch MODEL_URI, check MODEL_SHA256, create the session, run one warm-up inference.
    A download is kept while the model serves; a failed load or a local model leaves no directory, and
    one left by a killed server is removed here (kubeloop_serving.scratch)."""
    scratch = claim()
    try:
        loaded = _load(settings, scratch.path)
    except BaseException:
        scratch.remove()
        raise
    if Path(loaded.path).is_relative_to(scratch.path):
        return replace(loaded, download=scratch)
    scratch.remove()
    return loaded


def _load(settings: ServingSettings, workdir: Path) -> LoadedModel:
    started = time.perf_counter()
    fetched = fetch_model(settings.model_uri, workdir, settings.mlflow_tracking_uri)
    sha256 = verify_sha256(fetched.path, settings.model_sha256)
    threads = intra_op_threads(settings.intra_op_threads, container_cpu_limit())
    model = OnnxModel.load(str(fetched.path), threads)
    model.warm_up()
    loaded = LoadedModel(
        model=model,
        version=settings.model_version or fetched.registry_version or DEFAULT_VERSION,
        uri_scheme=uri_scheme(settings.model_uri),
        sha256=sha256,
        threads=threads,
        load_seconds=time.perf_counter() - started,
        path=str(fetched.path),
    )
    log.info(
        "loaded %s version %s from %s (sha256 %s) in %.2fs: %d intra-op threads, providers %s",
        settings.served_model_name,
        loaded.version,
        settings.model_uri,
        sha256,
        loaded.load_seconds,
        threads,
        model.providers,
    )
    return loaded
