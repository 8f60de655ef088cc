"""The peers' interpreters: each peer server lives in its own virtualenv, created on first use,
with our onnxruntime version, so its pins never touch ours."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KSERVE_VERSION = "0.21.0"
MLSERVER_VERSION = "1.7.1"
#: peer -> (virtualenv, the packages it needs beside onnxruntime and numpy)
PEER_VENVS = {
    "kserve": (ROOT / ".venv-kserve", [f"kserve=={KSERVE_VERSION}"]),
    "mlserver": (ROOT / ".venv-mlserver", [f"mlserver=={MLSERVER_VERSION}", "httptools", "uvloop"]),
}


@dataclass(frozen=True)
class PeerPythons:
    """The interpreter of each peer (ours where a peer is not benchmarked)."""

    kserve: Path
    mlserver: Path


def peer_python(peer: str) -> Path:
    """The peer's interpreter; creates its virtualenv (peer + our onnxruntime version) if missing."""
    import onnxruntime

    venv, packages = PEER_VENVS[peer]
    python = venv / "bin" / "python"
    probe = [
        str(python),
        "-c",
        f"import {peer}, onnxruntime; assert onnxruntime.__version__ == '{onnxruntime.__version__}'",
    ]
    if python.exists() and subprocess.run(probe, check=False, capture_output=True).returncode == 0:
        return python
    print(f"creating {venv} with {' '.join(packages)} ...", file=sys.stderr)
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *packages, f"onnxruntime=={onnxruntime.__version__}", "numpy"], check=True)
    return python


def peer_version(python: Path, package: str) -> str | None:
    """The installed version of ``package`` for that interpreter, if any."""
    done = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version('{package}'))"],
        check=False,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or None
