from __future__ import annotations

import functools
import http.server
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeloop.registry import RegistryReference, parse_registry_uri
from kubeloop_serving.errors import ModelLoadError
from kubeloop_serving.storage import (
    fetch_model,
    find_onnx_file,
    sha256_of,
    uri_scheme,
    verify_sha256,
)
from tests.fixtures.http_server import http_server

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [("models:/a/1", "models"), ("S3://b/k", "s3"), ("https://h/m.onnx", "https"), ("/p/m.onnx", "file")],
)
def test_uri_scheme(uri: str, scheme: str) -> None:
    assert uri_scheme(uri) == scheme


def test_registry_uris() -> None:
    assert parse_registry_uri("models:/fraud/3") == RegistryReference("fraud", version="3")
    assert parse_registry_uri("models:/fraud@champion") == RegistryReference("fraud", alias="champion")
    with pytest.raises(ValueError, match="not models"):
        parse_registry_uri("models:/fraud/3/extra")


def test_sha256_verification(tabular_path: Path) -> None:
    digest = sha256_of(tabular_path)
    assert verify_sha256(tabular_path, digest.upper()) == digest
    with pytest.raises(ModelLoadError, match="sha256 mismatch"):
        verify_sha256(tabular_path, "0" * 64)


def test_local_paths_files_and_directories(tmp_path: Path, tabular_path: Path) -> None:
    assert fetch_model(str(tabular_path), tmp_path).path == tabular_path
    assert fetch_model(f"file://{tabular_path}", tmp_path).path == tabular_path
    nested = tmp_path / "artifact" / "sub"
    nested.mkdir(parents=True)
    (nested / "model.onnx").write_bytes(tabular_path.read_bytes())
    assert find_onnx_file(tmp_path / "artifact") == nested / "model.onnx"
    assert fetch_model(str(tmp_path / "artifact"), tmp_path).path == nested / "model.onnx"
    with pytest.raises(ModelLoadError, match="does not exist"):
        fetch_model(str(tmp_path / "missing.onnx"), tmp_path)


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    with http_server(functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))) as url:
        yield root, url


def test_http_download(tmp_path: Path, tabular_path: Path, http_root: tuple[Path, str]) -> None:
    root, url = http_root
    (root / "tabular.onnx").write_bytes(tabular_path.read_bytes())
    fetched = fetch_model(f"{url}/tabular.onnx", tmp_path / "download")
    assert fetched.path.read_bytes() == tabular_path.read_bytes()
    with pytest.raises(ModelLoadError, match="cannot fetch model"):
        fetch_model(f"{url}/missing.onnx", tmp_path / "missing")


def test_s3_download(s3: Any, tmp_path: Path, tabular_path: Path) -> None:
    s3.mkdir("models")
    s3.pipe("models/iris/model.onnx", tabular_path.read_bytes())
    s3.clear_instance_cache()
    by_file = fetch_model("s3://models/iris/model.onnx", tmp_path / "a")
    by_prefix = fetch_model("s3://models/iris", tmp_path / "b")
    assert by_file.path.read_bytes() == by_prefix.path.read_bytes() == tabular_path.read_bytes()


def test_registry_uri_without_mlflow_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(ModelLoadError, match="need the mlflow package"):
        fetch_model("models:/fraud/1", tmp_path)


def test_registry_alias_resolves_to_a_version(tmp_path: Path, tabular_path: Path) -> None:
    mlflow = pytest.importorskip(
        "mlflow", reason="models:/ URIs need mlflow (pip install 'kubeloop[tracking]')"
    )
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "model.onnx").write_bytes(tabular_path.read_bytes())
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)  # process-wide MLflow state stays untouched
    experiment = client.create_experiment("serving", artifact_location=(tmp_path / "runs").as_uri())
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(artifact), artifact_path="model")
    client.set_terminated(run.info.run_id)
    client.create_registered_model("iris")
    for _ in range(2):
        client.create_model_version("iris", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias("iris", "champion", "1")
    by_alias = fetch_model("models:/iris@champion", tmp_path / "a", tracking_uri)
    latest = fetch_model("models:/iris/latest", tmp_path / "b", tracking_uri)
    assert (by_alias.registry_version, latest.registry_version) == ("1", "2")
    assert by_alias.path.read_bytes() == tabular_path.read_bytes()
