"""Fetch the ONNX file from a path, file://, http(s)://, s3:// (fsspec) or the MLflow registry."""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
from fsspec.core import url_to_fs

from kubeloop.registry import resolve_registered_model
from kubeloop_serving.errors import ModelLoadError

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FetchedModel:
    """A local ONNX file and, for registry URIs, the version it resolved to."""

    path: Path
    registry_version: str | None = None


def uri_scheme(uri: str) -> str:
    """``models``, ``s3``, ``https``, ``http``, ``file`` (plain paths too), ..."""
    if uri.startswith("models:/"):
        return "models"
    scheme, separator, _ = uri.partition("://")
    return scheme.lower() if separator else "file"


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str | None) -> str:
    """The file's sha256; ModelLoadError when it differs from ``expected``."""
    actual = sha256_of(path)
    if expected is not None and actual != expected.lower():
        raise ModelLoadError(f"sha256 mismatch for {path}: expected {expected.lower()}, got {actual}")
    return actual


def find_onnx_file(directory: Path) -> Path:
    """``model.onnx`` in ``directory`` (or below), else its only ``*.onnx`` file."""
    direct = directory / ONNX_FILE
    if direct.is_file():
        return direct
    nested = sorted(directory.rglob(ONNX_FILE))
    if nested:
        return nested[0]
    candidates = sorted(directory.rglob("*.onnx"))
    if len(candidates) == 1:
        return candidates[0]
    raise ModelLoadError(f"no {ONNX_FILE} in {directory} (found {[str(c) for c in candidates]})")


def fetch_model(uri: str, workdir: Path, tracking_uri: str | None = None) -> FetchedModel:
    """Make the model available as a local file, downloading into ``workdir`` when remote."""
    scheme = uri_scheme(uri)
    try:
        if scheme == "models":
            return _fetch_registry_model(uri, workdir, tracking_uri)
        if scheme == "file":
            return FetchedModel(_local_model(Path(uri.removeprefix("file://"))))
        return FetchedModel(_download(uri, workdir))
    except ModelLoadError:
        raise
    except Exception as error:
        raise ModelLoadError(f"cannot fetch model from {uri}: {type(error).__name__}: {error}") from error


def _local_model(path: Path) -> Path:
    if path.is_dir():
        return find_onnx_file(path)
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    return path


def _download(uri: str, workdir: Path) -> Path:
    source = uri
    if uri_scheme(uri) not in ("http", "https"):
        fs, path = url_to_fs(uri)
        if fs.isdir(path):
            source = f"{uri.rstrip('/')}/{ONNX_FILE}"
    target = workdir / ONNX_FILE
    workdir.mkdir(parents=True, exist_ok=True)
    with fsspec.open(source, "rb") as remote, target.open("wb") as local:
        shutil.copyfileobj(remote, local, _CHUNK)
    return target


def _fetch_registry_model(uri: str, workdir: Path, tracking_uri: str | None) -> FetchedModel:
    mlflow = _import_mlflow()
    registered = resolve_registered_model(uri, tracking_uri)
    log.info("resolved %s to version %s of registered model %s", uri, registered.version, registered.name)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=registered.location, dst_path=str(workdir), tracking_uri=tracking_uri
    )
    path = Path(local)
    return FetchedModel(path if path.is_file() else find_onnx_file(path), registry_version=registered.version)


def _import_mlflow() -> Any:
    try:
        import mlflow
    except ImportError as error:
        raise ModelLoadError(
            "models:/ URIs need the mlflow package: pip install 'kubeloop[tracking]' (or mlflow-skinny)"
        ) from error
    return mlflow
