"""ModelDeployment -> Deployment(s), Service, HorizontalPodAutoscaler, PodDisruptionBudget, ServiceMonitor."""

from __future__ import annotations

from typing import Any

from kubeloop.api.deployment import ModelDeploymentSpec, ModelSource, PayloadLogging
from kubeloop.api.deployment_status import ResolvedModel
from kubeloop.contracts.labels import labels_root
from kubeloop.contracts.registry_uri import is_registry_uri
from kubeloop.contracts.serving_env import ServerEnv
from kubeloop_operator.render.autoscaling import hpa_metrics
from kubeloop_operator.render.common import (
    Manifest,
    Owner,
    container_env,
    pod_identity,
    resource_requirements,
    restricted_container_security,
    restricted_pod_security,
    scheduling,
    writable_tmp,
)
from kubeloop_operator.render.delivery import (
    CANARY,
    EXPLAINER,
    SHADOW,
    Delivery,
    SideTracks,
    Track,
    render_routes,
    render_track_service,
    routes_file,
    routes_volume,
    side_tracks,
    track_name,
)
from kubeloop_operator.settings import OperatorSettings

HTTP_PORT = 8080
SERVICE_PORT = HTTP_PORT  # one port number inside and outside the pod: clients need not know which
GRPC_PORT = 8081  # OIP v2 gRPC, as KServe and MLServer
PAYLOAD_VOLUME = "payload-log"
# A stopping pod keeps serving while endpoints converge (kube-proxy, other nodes, load balancers):
# it is removed from the Service at once, but connections already routed to it still arrive.
PRE_STOP_SECONDS = 5
TERMINATION_GRACE_SECONDS = 30  # pre-stop + the server's drain of in-flight requests


def sink_path(payload: PayloadLogging) -> str | None:
    """The local directory of a file sink (where a PVC is mounted), None for object stores."""
    uri = payload.sink_uri
    if uri.startswith("s3://"):
        return None
    return uri.removeprefix("file://")


def payload_volume(payload: PayloadLogging | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if payload is None or payload.persistent_volume_claim is None or sink_path(payload) is None:
        return [], []
    volume = {"name": PAYLOAD_VOLUME, "persistentVolumeClaim": {"claimName": payload.persistent_volume_claim}}
    return [volume], [{"name": PAYLOAD_VOLUME, "mountPath": sink_path(payload)}]


def served_uri(source: ModelSource, resolved: ResolvedModel | None) -> str:
    """Serve the exact registry version the alias pointed at when we resolved it, so pods agree."""
    return resolved.uri if resolved is not None else source.uri


def separate_explainer(spec: ModelDeploymentSpec) -> bool:
    """Whether explanations run in the `<name>-explainer` track instead of the serving tracks."""
    return spec.explain is not None and spec.explain.enabled and spec.explain.separate_pods


def explains(spec: ModelDeploymentSpec, track: str) -> bool:
    """Whether ``track``'s servers answer /explain: the explainer track alone when separate, else
    every track but the shadow (which only receives copies of infer requests)."""
    if spec.explain is None or not spec.explain.enabled:
        return False
    return track == EXPLAINER if spec.explain.separate_pods else track != SHADOW


def server_env(
    owner: Owner,
    spec: ModelDeploymentSpec,
    source: ModelSource,
    resolved: ResolvedModel | None,
    settings: OperatorSettings,
    track: str = "stable",
) -> dict[str, str]:
    # the stable servers log the shadow's rows (with whether it agreed); its own would be duplicates
    payload = spec.payload_logging if track != SHADOW else None
    served = served_uri(source, resolved)
    explain = spec.explain if explains(spec, track) else None
    return ServerEnv(
        model_uri=served,
        model_name=owner.name,
        port=HTTP_PORT,
        max_batch_size=spec.batching.max_batch_size,
        max_batch_wait_ms=spec.batching.max_wait_ms,
        max_batch_run_ms=spec.batching.max_run_ms,
        model_version=resolved.version if resolved is not None else None,
        # the server downloads from the registry
        mlflow_tracking_uri=settings.mlflow_tracking_uri if is_registry_uri(served) else None,
        model_sha256=source.sha256,
        payload_log_uri=payload.sink_uri if payload else None,
        payload_log_sample_rate=payload.sample_rate if payload else None,
        labels_uri=labels_root(payload.sink_uri) if payload else None,
        routes_file=routes_file() if track == "stable" else None,  # only stable forwards
        track=track,
        explain_enabled=True if explain else None,
        explain_method=explain.method if explain else None,
        explain_background_uri=explain.background_uri if explain else None,
        explain_background_rows=explain.background_rows if explain else None,
        explain_budget=explain.budget if explain else None,
        grpc_port=GRPC_PORT if spec.grpc.enabled else 0,
        dataplane=spec.data_plane if spec.data_plane != "python" else None,
    ).to_env()


def probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "failureThreshold": failures}


def container_ports(spec: ModelDeploymentSpec) -> list[dict[str, Any]]:
    http = {"name": "http", "containerPort": HTTP_PORT}
    return [http, {"name": "grpc", "containerPort": GRPC_PORT}] if spec.grpc.enabled else [http]


def server_container(
    env: dict[str, str],
    spec: ModelDeploymentSpec,
    settings: OperatorSettings,
    mounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    volumes_mounts = writable_tmp()[1] + payload_volume(spec.payload_logging)[1] + (mounts or [])
    container: dict[str, Any] = {
        "name": "server",
        "image": spec.image or settings.serving_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["kubeloop", "serve"],  # whatever the image's entrypoint
        **container_env(env, spec),
        "ports": container_ports(spec),
        "startupProbe": probe("/v2/health/ready", 2, 150),
        "readinessProbe": probe("/v2/health/ready", 5, 2),
        "livenessProbe": probe("/v2/health/live", 10, 3),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
        "securityContext": restricted_container_security(),
        "volumeMounts": volumes_mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",  # a server that cannot load says why
    }
    requirements = resource_requirements(spec.resources)
    if requirements:
        container["resources"] = requirements
    return container


def render_server(
    owner: Owner,
    spec: ModelDeploymentSpec,
    settings: OperatorSettings,
    track: str,
    replicas: int,
    source: ModelSource,
    resolved: ResolvedModel | None,
) -> Manifest:
    name = track_name(owner, track)
    selector = {**owner.labels(), "kubeloop.io/track": track}
    version = resolved.version if resolved and resolved.version else ""
    volumes = writable_tmp()[0] + payload_volume(spec.payload_logging)[0]
    mounts = []
    if track == "stable":
        volume, mount = routes_volume(owner)
        volumes, mounts = [*volumes, volume], [mount]
    env = server_env(owner, spec, source, resolved, settings, track)
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
        "template": {
            "metadata": {
                "labels": {**selector, "kubeloop.io/component": "server"},
                "annotations": {
                    "kubeloop.io/model-uri": served_uri(source, resolved),
                    "kubeloop.io/model-version": version,
                },
            },
            "spec": {
                "securityContext": restricted_pod_security(),
                **pod_identity(spec),
                "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                "containers": [server_container(env, spec, settings, mounts)],
                "volumes": volumes,
                **scheduling(spec, spec.resources),
            },
        },
    }
    if track != "stable":  # the stable track's replicas belong to the HPA
        deployment_spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owner.metadata(name, {"kubeloop.io/track": track}),
        "spec": deployment_spec,
    }


def render_track(
    owner: Owner,
    spec: ModelDeploymentSpec,
    settings: OperatorSettings,
    track: str,
    replicas: int,
    source: ModelSource,
    resolved: ResolvedModel | None,
) -> list[Manifest]:
    """An extra track next to stable (canary, shadow, an A/B arm): its Deployment `<name>-<track>`
    with a fixed replica count, and a Service over its pods only, which the stable servers call."""
    return [
        render_server(owner, spec, settings, track, replicas, source, resolved),
        render_service(owner, spec, track),
    ]


def render_service(owner: Owner, spec: ModelDeploymentSpec, track: str = "stable") -> Manifest:
    """A track's Service: for stable, the one clients call (stable pods only: they forward the
    canary's share, over REST or gRPC); for another track, the one the stable servers call."""
    service = render_track_service(owner, track, track_name(owner, track), SERVICE_PORT)
    if spec.grpc.enabled:
        service["spec"]["ports"].append(grpc_service_port())
    return service


def render_grpc_service(owner: Owner) -> Manifest:
    """Headless `<name>-grpc`: its DNS name resolves to every ready stable pod, so a gRPC client with
    `dns:///` and round_robin spreads its HTTP/2 calls over pods (a ClusterIP pins each connection)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owner.metadata(grpc_service_name(owner), {"kubeloop.io/track": "stable"}),
        "spec": {
            "clusterIP": "None",
            "selector": {**owner.labels(), "kubeloop.io/track": "stable"},
            "ports": [grpc_service_port()],
        },
    }


def grpc_service_name(owner: Owner) -> str:
    return track_name(owner, "grpc")


def grpc_service_port() -> dict[str, Any]:
    return {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "appProtocol": "grpc"}


def render_autoscaler(owner: Owner, spec: ModelDeploymentSpec, min_replicas: int) -> Manifest:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": owner.metadata(owner.name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": owner.name},
            "minReplicas": min_replicas,
            "maxReplicas": max(min_replicas, spec.replicas.max),
            "metrics": hpa_metrics(spec.autoscaling),
            "behavior": {
                "scaleDown": {"stabilizationWindowSeconds": spec.autoscaling.scale_down_stabilization_seconds}
            },
        },
    }


def render_disruption_budget(owner: Owner) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": owner.metadata(owner.name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": owner.labels()}},
    }


def render_service_monitor(owner: Owner) -> Manifest:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": owner.metadata(owner.name),
        "spec": {
            "selector": {"matchLabels": owner.labels()},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
        },
    }


def render_serving(
    owner: Owner,
    spec: ModelDeploymentSpec,
    settings: OperatorSettings,
    resolved: ResolvedModel | None = None,
    canary_resolved: ResolvedModel | None = None,
    service_monitor: bool = False,
    delivery: Delivery | None = None,
    side: SideTracks | None = None,
) -> list[Manifest]:
    """Every child of a ModelDeployment. The stable track scales with the HPA and serves every request
    the Service gets, forwarding the canary's weight and the A/B arms' shares and mirroring the
    shadow's (the routes ConfigMap) to those tracks' Services. The shadow and the A/B arms run
    `replicas.min` replicas each (no autoscaler); a separate explainer, `explain.replicas`."""
    delivery, side = delivery or Delivery(), side or SideTracks()
    stable = delivery.stable or Track(spec.model, resolved)
    ports, domain = (SERVICE_PORT, GRPC_PORT if spec.grpc.enabled else 0), settings.cluster_domain
    children = [
        render_server(owner, spec, settings, "stable", 0, stable.source, stable.resolved),
        render_service(owner, spec),
        render_routes(owner, spec, delivery.weight, ports, domain, side.ready),
        render_disruption_budget(owner),
        render_autoscaler(owner, spec, spec.replicas.min),
    ]
    if spec.grpc.enabled:
        children.append(render_grpc_service(owner))
    if spec.explain is not None and separate_explainer(spec):
        children += render_track(
            owner, spec, settings, EXPLAINER, spec.explain.replicas, stable.source, stable.resolved
        )
    if spec.canary is not None:
        children += render_track(
            owner, spec, settings, CANARY, delivery.canary_replicas, spec.canary.model, canary_resolved
        )
    for track, source in side_tracks(spec):
        children += render_track(
            owner, spec, settings, track, spec.replicas.min, source, side.resolved.get(track)
        )
    if service_monitor:
        children.append(render_service_monitor(owner))
    return children


def service_url(owner: Owner, cluster_domain: str) -> str:
    return f"http://{owner.name}.{owner.namespace}.svc.{cluster_domain}:{SERVICE_PORT}/v2/models/{owner.name}"


def expected_replicas(spec: ModelDeploymentSpec, delivery: Delivery | None = None) -> int:
    """Ready replicas at which a ModelDeployment is fully Ready: stable's minimum, the canary's, and
    `replicas.min` for the shadow and each A/B arm, and the explainer's when it has pods of its own."""
    canary = delivery.canary_replicas if delivery and spec.canary else 0
    explainer = spec.explain.replicas if spec.explain is not None and separate_explainer(spec) else 0
    return spec.replicas.min * (1 + len(side_tracks(spec))) + canary + explainer
