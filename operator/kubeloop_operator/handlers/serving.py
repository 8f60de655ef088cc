"""ModelDeployment handlers: render the servers; follow registry aliases; derive status from Deployments."""

from __future__ import annotations

import time
from typing import Any

import kopf

from kubeloop.api.common import GROUP, VERSION
from kubeloop.api.deployment import ModelDeploymentSpec, ResolvedModel
from kubeloop_operator import metrics
from kubeloop_operator.conditions import observed_generation
from kubeloop_operator.registry import RegistryError, resolve
from kubeloop_operator.render.common import Owner
from kubeloop_operator.render.serving import expected_replicas, render_serving, service_url
from kubeloop_operator.runtime import RETRY, RUNTIME, parse_spec
from kubeloop_operator.status.serving import derive_serving_status

PLURAL = "modeldeployments"
OPTIONAL_KINDS = ("Deployment", "HorizontalPodAutoscaler", "ServiceMonitor")


def resolve_models(spec: ModelDeploymentSpec) -> tuple[ResolvedModel | None, ResolvedModel | None]:
    tracking = RUNTIME.settings.mlflow_tracking_uri
    canary = resolve(spec.canary.model.uri, tracking) if spec.canary else None
    return resolve(spec.model.uri, tracking), canary


def wire(model: ResolvedModel | None, uri: str) -> dict[str, Any]:
    return (model or ResolvedModel(uri=uri)).wire()


def refresh_status(
    namespace: str, name: str, problem: tuple[str, str] | None = None, models: dict[str, Any] | None = None
) -> None:
    """Derive status from the Deployments now; announce Ready transitions as Events."""
    kube = RUNTIME.client()
    seen: dict[str, Any] = {}

    def derive(current: dict[str, Any]) -> dict[str, Any]:
        seen["body"] = current
        owner = Owner.from_body(current)
        spec = ModelDeploymentSpec.model_validate(dict(current["spec"]))
        status = {**(current.get("status") or {}), **(models or {})}
        return derive_serving_status(
            status,
            kube.list_labeled("Deployment", owner.namespace, owner.labels()),
            observed_generation(
                status, owner.generation, reconciled=models is not None or problem is not None
            ),
            expected_replicas(spec),
            service_url(owner, RUNTIME.settings.cluster_domain),
            model=status.get("model"),
            canary_model=status.get("canaryModel") if spec.canary else None,
            problem=problem,
        )

    changed = kube.update_status("ModelDeployment", namespace, name, derive)
    if changed is None:
        return
    before, after = changed
    record_replicas(namespace, name, seen["body"], after)
    ready_before = next((c["status"] for c in before.get("conditions") or [] if c["type"] == "Ready"), None)
    ready = next(c for c in after["conditions"] if c["type"] == "Ready")
    if ready["status"] != ready_before:
        post = kopf.warn if ready_before == "True" else kopf.info  # losing readiness is the warning
        post(seen["body"], reason=ready["reason"], message=ready["message"])


def record_replicas(namespace: str, name: str, body: dict[str, Any], status: dict[str, Any]) -> None:
    spec = ModelDeploymentSpec.model_validate(dict(body["spec"]))
    metrics.SERVING_READY_REPLICAS.labels(namespace, name).set(status["readyReplicas"])
    metrics.SERVING_REPLICAS.labels(namespace, name).set(status["replicas"])
    metrics.SERVING_MIN_REPLICAS.labels(namespace, name).set(spec.replicas.min)
    metrics.SERVING_MAX_REPLICAS.labels(namespace, name).set(spec.replicas.max)
    metrics.SERVING_TARGET_CPU.labels(namespace, name).set(spec.autoscaling.target_cpu_utilization / 100)


def reconcile(body: Any, spec: ModelDeploymentSpec, prune: bool = True) -> None:
    """Apply every child, prune the ones no longer wanted, write status with the resolved versions."""
    owner = Owner.from_body(body)
    kube = RUNTIME.client()
    try:
        resolved, canary = resolve_models(spec)
    except RegistryError as error:
        refresh_status(owner.namespace, owner.name, problem=("ModelNotResolved", str(error)))
        raise kopf.TemporaryError(str(error), delay=15) from error
    children = render_serving(owner, spec, RUNTIME.settings, resolved, canary, RUNTIME.service_monitors)
    for child in children:
        kube.apply(child)
    for kind in OPTIONAL_KINDS if prune else ():
        if kind == "ServiceMonitor" and not RUNTIME.service_monitors:
            continue
        wanted = {c["metadata"]["name"] for c in children if c["kind"] == kind}
        kube.prune(kind, owner.namespace, owner.labels(), wanted)
    models = {"model": wire(resolved, spec.model.uri)}
    if spec.canary:
        models["canaryModel"] = wire(canary, spec.canary.model.uri)
    refresh_status(owner.namespace, owner.name, models=models)


@kopf.on.resume(GROUP, VERSION, PLURAL, **RETRY)  # type: ignore[arg-type]
@kopf.on.create(GROUP, VERSION, PLURAL, **RETRY)  # type: ignore[arg-type]
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec", **RETRY)  # type: ignore[arg-type]
def reconcile_model_deployment(body: kopf.Body, reason: kopf.Reason, **_: Any) -> None:
    with metrics.RECONCILE_SECONDS.labels("ModelDeployment").time():
        spec = parse_spec(ModelDeploymentSpec, body["spec"])
        reconcile(body, spec, prune=reason != kopf.Reason.CREATE)  # a new resource has nothing to prune
    metrics.RECONCILES.labels("ModelDeployment", "ok").inc()


@kopf.timer(GROUP, VERSION, PLURAL, interval=15, initial_delay=15, idle=10, **RETRY)  # type: ignore[arg-type]
def follow_registry(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Re-resolve `models:/name@alias`; when the alias moved, roll the servers to the new version.
    Also a slow resync of status, in case a child's watch event was missed."""
    spec = ModelDeploymentSpec.model_validate(dict(body["spec"]))
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    now = time.monotonic()
    uses_alias = "@" in spec.model.uri or (spec.canary is not None and "@" in spec.canary.model.uri)
    if uses_alias and now - memo.get("resolved_at", 0.0) >= spec.registry_poll_seconds:
        memo["resolved_at"] = now
        status = body.get("status") or {}
        try:
            resolved, canary = resolve_models(spec)
        except RegistryError as error:
            kopf.warn(body, reason="ModelNotResolved", message=str(error))
            return
        before = (status.get("model") or {}).get("version"), (status.get("canaryModel") or {}).get("version")
        after = resolved.version if resolved else None, canary.version if canary else None
        if before != after:
            kopf.info(body, reason="ModelVersionChanged", message=f"{before} -> {after}: rolling out")
            metrics.SERVING_MODEL_VERSION_CHANGES.labels(namespace, name).inc()
            reconcile(body, spec)
            return
    if now - memo.get("synced_at", 0.0) >= RUNTIME.settings.resync_seconds:
        memo["synced_at"] = now
        refresh_status(namespace, name)


@kopf.on.event("apps", "v1", "deployments", labels={"kubeloop.io/modeldeployment": kopf.PRESENT})  # type: ignore[arg-type]
def server_deployment_changed(
    body: kopf.Body, event: kopf.RawEvent, namespace: str, labels: kopf.Labels, **_: Any
) -> None:
    """Only rollout progress matters: a Deployment update that changes none of it is skipped."""
    key = body["metadata"]["uid"]
    progress = rollout_progress(dict(body))
    if event.get("type") == "DELETED":
        SEEN_PROGRESS.pop(key, None)
    elif SEEN_PROGRESS.get(key) == progress:
        return
    refresh_status(namespace, labels["kubeloop.io/modeldeployment"])
    if event.get("type") != "DELETED":
        SEEN_PROGRESS[key] = progress


SEEN_PROGRESS: dict[str, tuple[Any, ...]] = {}


def rollout_progress(deployment: dict[str, Any]) -> tuple[Any, ...]:
    status = deployment.get("status") or {}
    meta = deployment["metadata"]
    fields = ("observedGeneration", "replicas", "readyReplicas", "updatedReplicas", "availableReplicas")
    return (meta.get("generation"), meta.get("deletionTimestamp"), *(status.get(f) for f in fields))
