"""Progressive delivery's children: the routes ConfigMap the stable servers read (the canary weight)
and the canary's own Service they forward to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubeloop.api.deployment import ModelDeploymentSpec, ModelSource, ResolvedModel
from kubeloop.contracts.routing import ROUTES_DIR, ROUTES_FILE, ROUTES_KEY, Canary, Routes
from kubeloop_operator.render.common import Manifest, Owner
from kubeloop_operator.render.names import child_name

ROUTES_VOLUME = "routes"
CANARY = "canary"


@dataclass(frozen=True)
class Track:
    """A model a track serves: what the spec names, and the registry version it resolved to."""

    source: ModelSource
    resolved: ResolvedModel | None = None


@dataclass(frozen=True)
class Delivery:
    """What the rollout decided for this pass: the canary's weight (the routes, nothing else), its
    replicas, and the model stable serves instead of spec.model (a promotion), if any."""

    weight: int = 0
    canary_replicas: int = 0
    stable: Track | None = field(default=None)


def routes_name(owner: Owner) -> str:
    return child_name(owner.name, "routes")


def canary_name(owner: Owner) -> str:
    return child_name(owner.name, CANARY)


def canary_url(owner: Owner, port: int, cluster_domain: str) -> str:
    return f"http://{canary_name(owner)}.{owner.namespace}.svc.{cluster_domain}:{port}"


def routes(owner: Owner, spec: ModelDeploymentSpec, weight: int, port: int, cluster_domain: str) -> Routes:
    canary = None
    if spec.canary is not None:
        canary = Canary(url=canary_url(owner, port, cluster_domain), weight_percent=weight)
    return Routes(generation=owner.generation, canary=canary)


def render_routes(
    owner: Owner, spec: ModelDeploymentSpec, weight: int, port: int, cluster_domain: str
) -> Manifest:
    """Always rendered (and always mounted), so adding or reweighting a canary never restarts stable."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owner.metadata(routes_name(owner)),
        "data": {ROUTES_KEY: routes(owner, spec, weight, port, cluster_domain).to_json()},
    }


def routes_volume(owner: Owner) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ConfigMap volume (not subPath: the kubelet refreshes it in place): (volume, mount)."""
    volume = {"name": ROUTES_VOLUME, "configMap": {"name": routes_name(owner)}}
    return volume, {"name": ROUTES_VOLUME, "mountPath": ROUTES_DIR, "readOnly": True}


def routes_file() -> str:
    return ROUTES_FILE


def render_track_service(owner: Owner, track: str, name: str, port: int) -> Manifest:
    """A Service over one track's pods only."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owner.metadata(name, {"kubeloop.io/track": track}),
        "spec": {
            "selector": {**owner.labels(), "kubeloop.io/track": track},
            "ports": [{"name": "http", "port": port, "targetPort": "http"}],
        },
    }
