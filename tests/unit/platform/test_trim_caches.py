"""hack/trim-caches.sh: kubeloop's Go caches go, the binaries they built stay, and a full disk is reported."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SCRIPT = Path(__file__).resolve().parents[3] / "hack/trim-caches.sh"


def trim(cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT],
        env={**os.environ, "KUBELOOP_CACHE": str(cache), **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def test_go_caches_are_dropped_and_binaries_kept(tmp_path: Path) -> None:
    build = tmp_path / "go/build/ab"
    build.mkdir(parents=True)
    (build / "ab12-d").write_bytes(b"x" * 4096)
    module = tmp_path / "go/mod/example.com/m@v1.0.0"
    module.mkdir(parents=True)
    (module / "go.mod").write_text("module example.com/m\n")
    module.chmod(0o555)  # the module cache is read-only, as Go leaves it
    binary = tmp_path / "bin/helm-v3.21.4/helm"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")

    out = trim(tmp_path).stderr

    assert not (tmp_path / "go").exists()
    assert binary.read_text() == "#!/bin/sh\n"
    assert "dropped kubeloop's Go build and module caches" in out
    assert "GB free" in out


def test_too_little_free_disk_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    out = trim(tmp_path, KUBELOOP_WANT_FREE_GB="100000000").stderr
    assert "WARNING: under 100000000 GB free" in out
    assert "dropped" not in out  # nothing to drop


def test_a_fresh_machine_without_a_cache_gets_the_free_space(tmp_path: Path) -> None:
    out = trim(tmp_path / "not-yet").stderr
    assert re.search(r"disk: \d+ GB free", out), out


def go_caches(cache: Path) -> Path:
    build = cache / "go/build/ab"
    build.mkdir(parents=True)
    (build / "ab12-d").write_bytes(b"x" * 4096)
    return cache / "go"


def test_a_kubeloop_go_command_running_keeps_the_caches(tmp_path: Path) -> None:
    caches = go_caches(tmp_path)
    with (tmp_path / ".go-caches.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)  # what hack/go-env.sh's go() holds while a go command runs
        out = trim(tmp_path).stderr
    assert caches.exists()
    assert "a Go build is running: Go caches kept" in out


def test_another_go_process_does_not_keep_them(tmp_path: Path) -> None:
    """A go process that is not one of kubeloop's on this cache (the user's own, or the background build
    of `make test` beside this very test, on the real cache) does not stop the trim."""
    caches = go_caches(tmp_path / "cache")
    other_go = tmp_path / "go"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", other_go)  # a process named go
    with subprocess.Popen([other_go, "30"]) as running:
        try:
            trim(tmp_path / "cache")
        finally:
            running.kill()
    assert not caches.exists()
