"""Loading leaves no scratch directory behind: not for a local model, a failed load, or a stopped server."""

from __future__ import annotations

import functools
import http.server
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeloop_serving.errors import ModelLoadError
from kubeloop_serving.loading import load_model
from kubeloop_serving.settings import ServingSettings
from tests.unit.serving.conftest import serve_in_thread

pytestmark = pytest.mark.unit


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory every ``tempfile.mkdtemp`` of this test creates its directory in."""
    root = tmp_path / "scratch"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture
def model_url(tmp_path: Path, tabular_path: Path) -> Iterator[str]:
    """The tabular model served over plain HTTP, so loading it downloads a copy."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "model.onnx").write_bytes(tabular_path.read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/model.onnx"
    server.shutdown()
    server.server_close()


def test_a_local_model_is_read_in_place(scratch: Path, tabular_path: Path) -> None:
    loaded = load_model(ServingSettings(model_uri=str(tabular_path)))
    assert loaded.path == str(tabular_path)
    assert list(scratch.iterdir()) == []
    loaded.discard_download()
    assert tabular_path.is_file()


def test_a_failed_load_removes_what_it_downloaded(scratch: Path, model_url: str) -> None:
    with pytest.raises(ModelLoadError, match="sha256 mismatch"):
        load_model(ServingSettings(model_uri=model_url, model_sha256="0" * 64))
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(ServingSettings(model_uri=str(scratch / "missing.onnx")))
    assert list(scratch.iterdir()) == []


def test_a_download_lives_as_long_as_the_server(scratch: Path, model_url: str) -> None:
    with serve_in_thread(model_url, model_name="tab") as running:
        assert running.infer("tab", {"inputs": []}).status_code == 400
        (download,) = scratch.iterdir()
        assert (download / "model.onnx").is_file()
    assert list(scratch.iterdir()) == []
