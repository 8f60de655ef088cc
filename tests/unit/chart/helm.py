"""The chart as its users see it: rendered by the pinned helm, checked by kubeconform (hack/)."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts/kubeloop"
ALL_ON = CHART / "ci/all-on-values.yaml"
Manifest = dict[str, Any]


@functools.cache
def helm_binary() -> Path:
    """The pinned helm (hack/build-helm.sh: cached, built alone if missing)."""
    out = subprocess.run([ROOT / "hack/build-helm.sh"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def helm(
    *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, timeout=300, check=False, env=env
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def template_text(
    values: dict[str, Any] | None = None,
    *files: Path,
    namespace: str = "kubeloop-system",
    release: str = "kubeloop",
    crds: bool = False,
    check: bool = True,
    api_versions: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """`helm template`; extra values as a YAML document on stdin, after the files. `api_versions`: what
    the pretended cluster serves beyond the built-in kinds (.Capabilities.APIVersions)."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    args += [arg for file in files for arg in ("-f", str(file))]
    args += [arg for version in api_versions for arg in ("--api-versions", version)]
    if values is not None:
        args += ["-f", "-"]
    if crds:
        args.append("--include-crds")
    result = subprocess.run(
        [str(helm_binary()), *args],
        input=yaml.safe_dump(values) if values is not None else None,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{result.stderr}")
    return result


def render(values: dict[str, Any] | None = None, *files: Path, **kwargs: Any) -> list[Manifest]:
    """Every object the chart renders (no CRDs unless crds=True)."""
    text = template_text(values, *files, **kwargs).stdout
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(manifests: list[Manifest], kind: str, name_part: str = "") -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind and name_part in m["metadata"]["name"]]


def one(manifests: list[Manifest], kind: str, name_part: str = "") -> Manifest:
    found = find(manifests, kind, name_part)
    assert len(found) == 1, (
        f"expected one {kind} *{name_part}*, found {[m['metadata']['name'] for m in found]}"
    )
    return found[0]


def operator_container(manifests: list[Manifest]) -> Manifest:
    deployment = one(manifests, "Deployment", "operator")
    container: Manifest = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def operator_env(manifests: list[Manifest]) -> dict[str, str]:
    """The operator's literal environment (valueFrom entries left out)."""
    return {e["name"]: e["value"] for e in operator_container(manifests)["env"] if "value" in e}


def kubeconform(text: str) -> dict[str, Any]:
    """hack/kubeconform.sh on `text` with JSON output: {"resources": [...], "summary": {...}}."""
    result = subprocess.run(
        [str(ROOT / "hack/kubeconform.sh"), "-output", "json", "-verbose", "-"],
        input=text,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(f"kubeconform gave no report ({result.returncode}):\n{result.stderr}") from error
    return report
