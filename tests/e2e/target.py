"""Which cluster `make demo` runs on, and what changes on a cluster that is not this machine's node.

The local node (hack/platform.sh up) imports the images built here into its containerd. A cluster that
KUBECONFIG reaches cannot see them: they are pushed to KUBELOOP_REGISTRY (hack/push-images.sh) and the
chart and the S3 add-on are pointed at the pushed references (hack/platform.sh up-existing, which calls
this module's command line for the overrides). Standard library only: system python3 runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Mode = Literal["local", "existing"]
MODES: tuple[Mode, ...] = ("local", "existing")


class TargetError(Exception):
    """The cluster asked for cannot be used (named by KUBELOOP_CLUSTER or KUBECONFIG)."""


@dataclass(frozen=True)
class Target:
    mode: Mode
    kubeconfig: str | None  # the KUBECONFIG value (a path list) of an existing cluster; None: the local node
    reason: str

    def describe(self) -> str:
        where = (
            "the local real node" if self.mode == "local" else f"the cluster of KUBECONFIG={self.kubeconfig}"
        )
        return f"{where} ({self.reason})"


LOCAL = Target("local", None, "default")


def local_kubeconfig(env: Mapping[str, str]) -> Path:
    """The local node's admin kubeconfig (hack/kubelet/node.sh writes it into its work dir)."""
    return Path(env.get("KUBELET_WORKDIR", "/tmp/kubeloop-node")) / "admin.kubeconfig"


def kubeconfig_paths(env: Mapping[str, str], home: Path) -> list[Path]:
    """The files kubectl would read: KUBECONFIG's list when set, else ~/.kube/config if it exists."""
    if env.get("KUBECONFIG"):
        return [Path(p) for p in env["KUBECONFIG"].split(os.pathsep) if p]
    default = home / ".kube" / "config"
    return [default] if default.is_file() else []


def choose(env: Mapping[str, str], home: Path, reachable: Callable[[str], bool]) -> Target:
    """The cluster to use: KUBELOOP_CLUSTER=local|existing forces it; otherwise an existing cluster when a
    kubeconfig that is not the local node's reaches its cluster (`reachable(KUBECONFIG value)`)."""
    forced = env.get("KUBELOOP_CLUSTER", "")
    if forced and forced not in MODES:
        raise TargetError(f"KUBELOOP_CLUSTER={forced!r}: expected one of {', '.join(MODES)}")
    if forced == "local":
        return Target("local", None, "KUBELOOP_CLUSTER=local")
    paths = kubeconfig_paths(env, home)
    value = os.pathsep.join(str(p) for p in paths)
    if forced == "existing":
        if not paths:
            raise TargetError(
                "KUBELOOP_CLUSTER=existing needs KUBECONFIG (or ~/.kube/config) for that cluster"
            )
        if not reachable(value):
            raise TargetError(f"KUBELOOP_CLUSTER=existing: KUBECONFIG={value} does not reach its cluster")
        return Target("existing", value, "KUBELOOP_CLUSTER=existing")
    if not paths:
        return Target("local", None, "no KUBECONFIG and no ~/.kube/config")
    node = local_kubeconfig(env).resolve()
    if all(p.resolve() == node for p in paths):
        return Target("local", None, f"KUBECONFIG={value} is this machine's node")
    if not reachable(value):
        return Target("local", None, f"KUBECONFIG={value} reaches no cluster")
    return Target("existing", value, "it answers kubectl version")


def kubectl_reaches(kubectl: Path | str, kubeconfig: str) -> bool:
    """Whether `kubectl version` gets the server's version with that KUBECONFIG (it fails when it cannot)."""
    try:
        done = subprocess.run(
            [str(kubectl), "version", "--request-timeout=10s"],
            env={**os.environ, "KUBECONFIG": kubeconfig},
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


# --- images on an existing cluster: the references hack/push-images.sh pushed ---


@dataclass(frozen=True)
class Pushed:
    """Full references (REGISTRY/NAME:TAG) of the images pushed for an existing cluster."""

    kubeloop: str
    trainer: str
    mlflow: str
    prometheus: str
    seaweedfs: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Pushed:
        """From hack/push-images.sh's .run/pushed.env (KUBELOOP_IMAGE=..., one per image)."""
        names = ("kubeloop", "trainer", "mlflow", "prometheus", "seaweedfs")
        missing = [f"{n.upper()}_IMAGE" for n in names if not env.get(f"{n.upper()}_IMAGE")]
        if missing:
            raise TargetError(f"pushed image references missing: {', '.join(missing)}")
        return cls(*(env[f"{n.upper()}_IMAGE"] for n in names))


def split_ref(ref: str) -> tuple[str, str]:
    """repository, tag of NAME:TAG (the registry may carry a port: host:5000/name:tag)."""
    repository, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag or not repository:
        raise TargetError(f"image reference without a tag: {ref!r}")
    return repository, tag


def helm_set_args(pushed: Pushed) -> list[str]:
    """`helm --set` arguments pointing the chart (operator, servers, drift checks, trainer, MLflow,
    Prometheus) at the pushed images."""
    args: list[str] = []
    for key, ref in (
        ("image", pushed.kubeloop),
        ("mlflow.image", pushed.mlflow),
        ("prometheus.image", pushed.prometheus),
    ):
        repository, tag = split_ref(ref)
        args += ["--set", f"{key}.repository={repository}", "--set-string", f"{key}.tag={tag}"]
    return [*args, "--set-string", f"operator.settings.trainerImage={pushed.trainer}"]


def json_objects(text: str) -> list[dict[str, Any]]:
    """The objects of what `kubectl create --dry-run=client -o json -f FILE` prints: one JSON document per
    object, one after the other (or a List), as a flat list."""
    decoder, at = json.JSONDecoder(), 0
    objects: list[dict[str, Any]] = []
    while at < len(text.rstrip()):
        value, end = decoder.raw_decode(text, at)
        objects += value["items"] if value.get("kind") == "List" else [value]
        at = end
        while at < len(text) and text[at].isspace():
            at += 1
    return objects


def s3_manifests(objects: list[dict[str, Any]], image: str) -> dict[str, Any]:
    """hack/addons/s3.yaml's objects as a List for any cluster: the pushed SeaweedFS image pulled when
    missing (the local node imports it: Never), and no fixed ClusterIP (the local node's Service CIDR is
    not another cluster's)."""
    items = []
    for given in objects:
        obj = json.loads(json.dumps(given))  # a copy: the input is left as it was
        spec = obj.get("spec", {})
        if obj["kind"] == "Service":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        pod = spec.get("template", {}).get("spec", {})
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            container["image"] = image
            container["imagePullPolicy"] = "IfNotPresent"
        items.append(obj)
    return {"apiVersion": "v1", "kind": "List", "items": items}


def main(argv: list[str]) -> int:
    """hack/platform.sh's helpers: `helm-args ENV_FILE` (one argument a line), `s3-manifest IMAGE`
    (kubectl's JSON objects on stdin, the changed List on stdout)."""
    match argv:
        case ["helm-args", env_file]:
            env = dict(line.split("=", 1) for line in Path(env_file).read_text().splitlines() if "=" in line)
            print("\n".join(helm_set_args(Pushed.from_env(env))))
        case ["s3-manifest", image]:
            print(json.dumps(s3_manifests(json_objects(sys.stdin.read()), image)))
        case _:
            print("usage: target.py helm-args ENV_FILE | s3-manifest IMAGE", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except TargetError as error:
        sys.exit(f"target.py: {error}")
