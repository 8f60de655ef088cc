"""ModelDeployment handlers: render the servers; follow registry aliases; derive status from Deployments."""

from __future__ import annotations

import time
from typing import Any

import kopf

from kubeloop.api.common import GROUP, VERSION
from kubeloop.api.deployment import ModelDeploymentSpec, ResolvedModel
from kubeloop_operator import metrics
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


def refresh_status(namespace: str, name: str, problem: tuple[str, str] | None = None) -> None:
    """Derive status from the Deployments now; announce Ready transitions as Events."""
    kube = RUNTIME.client()
    seen: dict[str, Any] = {}

    def derive(current: dict[str, Any]) -> dict[str, Any]:
        seen["body"] = current
        owner = Owner.from_body(current)
        spec = ModelDeploymentSpec.model_validate(dict(current["spec"]))
        status = dict(current.get("status") or {})
        return derive_serving_status(
            status,
            kube.list("Deployment", owner.namespace, owner.labels()),
            owner.generation,
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
    metrics.SERVING_READY_REPLICAS.labels(namespace, name).set(after["readyReplicas"])
    ready_before = next((c["status"] for c in before.get("conditions") or [] if c["type"] == "Ready"), None)
    ready = next(c for c in after["conditions"] if c["type"] == "Ready")
    if ready["status"] != ready_before:
        post = kopf.warn if ready_before == "True" else kopf.info  # losing readiness is the warning
        post(seen["body"], reason=ready["reason"], message=ready["message"])


def reconcile(body: Any, spec: ModelDeploymentSpec) -> tuple[ResolvedModel | None, ResolvedModel | None]:
    """Apply every child, prune the ones no longer wanted, record the resolved versions."""
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
    for kind in OPTIONAL_KINDS:
        if kind == "ServiceMonitor" and not RUNTIME.service_monitors:
            continue
        kube.prune(kind, owner.namespace, owner.labels(), {c["metadata"]["name"] for c in children if c["kind"] == kind})
    status_models = {"model": wire(resolved, spec.model.uri)}
    if spec.canary:
        status_models["canaryModel"] = wire(canary, spec.canary.model.uri)
    kube.patch_status("ModelDeployment", owner.namespace, owner.name, status_models)
    return resolved, canary


@kopf.on.resume(GROUP, VERSION, PLURAL, **RETRY)  # type: ignore[arg-type]
@kopf.on.create(GROUP, VERSION, PLURAL, **RETRY)  # type: ignore[arg-type]
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec", **RETRY)  # type: ignore[arg-type]
def reconcile_model_deployment(body: kopf.Body, **_: Any) -> None:
    with metrics.RECONCILE_SECONDS.labels("ModelDeployment").time():
        spec = parse_spec(ModelDeploymentSpec, body["spec"])
        reconcile(body, spec)
        refresh_status(body["metadata"]["namespace"], body["metadata"]["name"])
    metrics.RECONCILES.labels("ModelDeployment", "ok").inc()


@kopf.timer(GROUP, VERSION, PLURAL, interval=10, initial_delay=10, idle=5, **RETRY)  # type: ignore[arg-type]
def follow_registry(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Re-resolve `models:/name@alias`; when the alias moved, roll the servers to the new version."""
    spec = ModelDeploymentSpec.model_validate(dict(body["spec"]))
    uses_alias = "@" in spec.model.uri or (spec.canary is not None and "@" in spec.canary.model.uri)
    due = time.monotonic() - memo.get("resolved_at", 0.0) >= spec.registry_poll_seconds
    if uses_alias and due:
        memo["resolved_at"] = time.monotonic()
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
            metrics.SERVING_MODEL_VERSION_CHANGES.labels(body["metadata"]["namespace"], body["metadata"]["name"]).inc()
            reconcile(body, spec)
    refresh_status(body["metadata"]["namespace"], body["metadata"]["name"])


@kopf.on.event("apps", "v1", "deployments", labels={"kubeloop.io/modeldeployment": kopf.PRESENT})  # type: ignore[arg-type]
def server_deployment_changed(namespace: str, labels: kopf.Labels, **_: Any) -> None:
    refresh_status(namespace, labels["kubeloop.io/modeldeployment"])
