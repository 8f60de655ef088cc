"""Progressive delivery's children: the routes ConfigMap the stable servers read (the canary weight,
the shadow's share, the A/B arms) and the Services of the tracks they forward to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubeloop.api.deployment import ABTest, ModelDeploymentSpec, ModelSource
from kubeloop.api.deployment_status import ResolvedModel
from kubeloop.contracts import routing
from kubeloop.contracts.routing import ROUTES_DIR, ROUTES_FILE, ROUTES_KEY, Canary, Routes
from kubeloop_operator.render.common import Manifest, Owner
from kubeloop_operator.render.names import child_name

ROUTES_VOLUME = "routes"
CANARY = "canary"
SHADOW = "shadow"
EXPLAINER = "explainer"


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


@dataclass(frozen=True)
class SideTracks:
    """The shadow and the A/B arms with a model of their own: the versions their models resolved to
    (by track name) and the tracks with a ready replica (only those are sent requests)."""

    resolved: Mapping[str, ResolvedModel | None] = field(default_factory=dict)
    ready: frozenset[str] = frozenset()


def side_tracks(spec: ModelDeploymentSpec) -> list[tuple[str, ModelSource]]:
    """(track, model) of every extra track but the canary: the shadow, then each A/B arm's."""
    tracks = [(SHADOW, spec.shadow.model)] if spec.shadow is not None else []
    if spec.ab_test is not None:
        tracks += [(v.name, v.model) for v in spec.ab_test.variants if v.model is not None]
    return tracks


def ab_weights(ab: ABTest, ready: frozenset[str]) -> dict[str, int]:
    """Each arm's weight now: an arm not ready yet gets 0, its weight goes to the control arm."""
    control = ab.control.name
    weights = {v.name: v.weight_percent if v.model is None or v.name in ready else 0 for v in ab.variants}
    weights[control] += 100 - sum(weights.values())
    return weights


def routes_name(owner: Owner) -> str:
    return child_name(owner.name, "routes")


def track_name(owner: Owner, track: str) -> str:
    """The Deployment and Service of a track: the ModelDeployment's own name for stable, else
    `<name>-<track>` (`<name>-canary`, `<name>-shadow`, `<name>-<variant>`)."""
    return owner.name if track == "stable" else child_name(owner.name, track)


def canary_name(owner: Owner) -> str:
    return track_name(owner, CANARY)


def track_url(owner: Owner, track: str, port: int, cluster_domain: str) -> str:
    return f"http://{track_name(owner, track)}.{owner.namespace}.svc.{cluster_domain}:{port}"


def track_grpc_target(owner: Owner, track: str, grpc_port: int, cluster_domain: str) -> str | None:
    """host:port of the track's gRPC port, or None when gRPC is off (``grpc_port`` 0)."""
    if not grpc_port:
        return None
    return f"{track_name(owner, track)}.{owner.namespace}.svc.{cluster_domain}:{grpc_port}"


def routes(
    owner: Owner,
    spec: ModelDeploymentSpec,
    weight: int,
    ports: tuple[int, int],
    cluster_domain: str,
    ready: frozenset[str] = frozenset(),
) -> Routes:
    """The stable servers' table: the canary at `weight`; the shadow and the A/B arms only once
    they are in `ready` (a shadow not ready mirrors 0%, an arm not ready gets weight 0). `ports` are
    the tracks' Service ports (REST, gRPC; gRPC 0 when off: gRPC calls are then served by stable)."""
    port, grpc_port = ports

    def url(track: str) -> str:
        return track_url(owner, track, port, cluster_domain)

    def grpc(track: str) -> str | None:
        return track_grpc_target(owner, track, grpc_port, cluster_domain)

    canary = shadow = ab = None
    if spec.canary is not None:
        canary = Canary(url=url(CANARY), weight_percent=weight, grpc_target=grpc(CANARY))
    if spec.shadow is not None:
        shadow = routing.Shadow(
            url=url(SHADOW),
            percent=spec.shadow.percent if SHADOW in ready else 0,
            queue_size=spec.shadow.queue_size,
            grpc_target=grpc(SHADOW),
        )
    if spec.ab_test is not None:
        weights = ab_weights(spec.ab_test, ready)
        variants = [
            routing.Variant(
                name=v.name,
                url=None if v.model is None else url(v.name),
                weight_percent=weights[v.name],
                grpc_target=None if v.model is None else grpc(v.name),
            )
            for v in spec.ab_test.variants
        ]
        ab = routing.ABTest(header=spec.ab_test.header, variants=variants)
    return Routes(generation=owner.generation, canary=canary, shadow=shadow, ab=ab)


def render_routes(
    owner: Owner,
    spec: ModelDeploymentSpec,
    weight: int,
    ports: tuple[int, int],
    cluster_domain: str,
    ready: frozenset[str] = frozenset(),
) -> Manifest:
    """Always rendered (and always mounted), so adding or reweighting a canary, a shadow or an A/B
    test never restarts stable."""
    table = routes(owner, spec, weight, ports, cluster_domain, ready)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owner.metadata(routes_name(owner)),
        "data": {ROUTES_KEY: table.to_json()},
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
