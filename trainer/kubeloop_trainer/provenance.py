"""Where a model came from: code version (kubeloop version, git sha) and runtime environment."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

LIBRARIES = (
    "numpy",
    "scikit-learn",
    "skl2onnx",
    "torch",
    "onnx",
    "onnxruntime",
    "optuna",
    "mlflow",
    "pyarrow",
)
GIT_SHA_ENV = "KUBELOOP_GIT_SHA"


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_sha(directory: Path | None = None) -> str | None:
    """$KUBELOOP_GIT_SHA (baked into images), else the checkout's HEAD where git can tell."""
    if sha := os.environ.get(GIT_SHA_ENV, "").strip():
        return sha
    here = directory or Path(__file__).resolve().parent
    try:
        completed = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = completed.stdout.strip()
    return sha if completed.returncode == 0 and sha else None


def code_version() -> dict[str, str]:
    version = {"kubeloop.version": package_version("kubeloop") or "unknown"}
    if sha := git_sha():
        version["kubeloop.git_sha"] = sha
    return version


def environment() -> dict[str, str]:
    """Python, platform and the versions of the libraries that shape a model."""
    found = {f"env.{name}": version for name in LIBRARIES if (version := package_version(name))}
    return {"env.python": platform.python_version(), "env.platform": platform.platform(), **found}
