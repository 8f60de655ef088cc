"""Loading leaves no scratch directory behind: not for a local model, a failed load, a stopped server, or
(at the next load) a killed one."""

from __future__ import annotations

import fcntl
import functools
import http.server
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeloop_serving.errors import ModelLoadError
from kubeloop_serving.loading import load_model
from kubeloop_serving.scratch import LOCK_FILE, PREFIX
from kubeloop_serving.settings import ServingSettings
from tests.fixtures.http_server import http_server
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
    with http_server(functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))) as url:
        yield f"{url}/model.onnx"


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


KILLED_SERVER = """
import sys, tempfile, time
tempfile.tempdir = sys.argv[1]
from kubeloop_serving.loading import load_model
from kubeloop_serving.settings import ServingSettings
load_model(ServingSettings(model_uri=sys.argv[2]))
print("loaded", flush=True)
time.sleep(600)
"""


def test_the_download_of_a_killed_server_is_removed_by_the_next_load_and_a_live_ones_kept(
    scratch: Path, model_url: str
) -> None:
    """An OOM kill is SIGKILL, and a pod's /tmp (an emptyDir) outlives the container: without the
    sweep, every restart would leave one more copy of the model."""
    live = load_model(ServingSettings(model_uri=model_url))
    killed = subprocess.Popen(
        [sys.executable, "-c", KILLED_SERVER, str(scratch), model_url], stdout=subprocess.PIPE
    )
    assert killed.stdout is not None and killed.stdout.readline() == b"loaded\n"
    killed.kill()
    killed.wait()
    unlocked = scratch / f"{PREFIX}without-a-lock"  # its maker died before locking it
    unlocked.mkdir()
    (scratch / "someone-elses").mkdir()
    assert len(list(scratch.glob(f"{PREFIX}*"))) == 3
    newer = load_model(ServingSettings(model_uri=model_url))
    assert live.download is not None and newer.download is not None
    assert set(scratch.iterdir()) == {live.download.path, newer.download.path, scratch / "someone-elses"}
    assert (live.download.path / "model.onnx").is_file()
    live.discard_download()
    newer.discard_download()
    assert list(scratch.iterdir()) == [scratch / "someone-elses"]


def test_removing_a_download_waits_for_a_sweep_in_progress(scratch: Path, model_url: str) -> None:
    """A sweep that met a half-removed directory (its lock file already gone) would take it for a killed
    server's and say so: the removal waits for the lock a sweep holds on the temporary directory."""
    loaded = load_model(ServingSettings(model_uri=model_url))
    assert loaded.download is not None
    path = loaded.download.path
    sweep = os.open(scratch, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(sweep, fcntl.LOCK_EX)
    remover = threading.Thread(target=loaded.discard_download)
    remover.start()
    remover.join(0.5)
    assert remover.is_alive() and (path / LOCK_FILE).is_file()
    os.close(sweep)
    remover.join(30)
    assert not remover.is_alive() and not path.exists()
