"""ModelDeployment triggers: its own changes, its servers' rollout progress, its autoscaler's state, a
timer for the ones that follow a registry alias, one for those not Ready (why their pods do not run),
one for those with a canary (steps and analyses), its deletion."""

from __future__ import annotations

from typing import Any

import kopf

from kubeloop.api.common import GROUP, VERSION
from kubeloop_operator.context import context_of
from kubeloop_operator.handlers.options import RETRY, deleted
from kubeloop_operator.reconcile import reconcile_model_deployment
from kubeloop_operator.settings import OperatorSettings

PLURAL = "modeldeployments"
LABEL = "kubeloop.io/modeldeployment"


def follows_alias(spec: kopf.Spec, **_: Any) -> bool:
    """`models:/name@alias` is asked again every registryPollSeconds (the reconcile's cache)."""
    uris = [spec.get("model", {}).get("uri", ""), (spec.get("canary") or {}).get("model", {}).get("uri", "")]
    return any("@" in uri for uri in uris)


def has_canary(spec: kopf.Spec, **_: Any) -> bool:
    """A canary's steps, analyses and drain are due at times kept in status: asked every poll."""
    return bool(spec.get("canary"))


def not_ready(status: kopf.Status, **_: Any) -> bool:
    """Why a server pod does not run (a crash loop, an image pull backing off) changes without an
    event of the Deployment's: asked every poll until Ready."""
    return any(c.get("type") == "Ready" and c.get("status") != "True" for c in status.get("conditions") or [])


def model_deployment(*, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    reconcile_model_deployment(context_of(memo), str(namespace), name)


def model_deployment_changed(
    *, namespace: str | None, name: str, body: kopf.Body, memo: Any, **_: Any
) -> None:
    reconcile_model_deployment(context_of(memo), str(namespace), name, dict(body))


kopf.on.resume(GROUP, VERSION, PLURAL, **RETRY)(model_deployment_changed)
kopf.on.create(GROUP, VERSION, PLURAL, **RETRY)(model_deployment_changed)
kopf.on.update(GROUP, VERSION, PLURAL, field="spec", **RETRY)(model_deployment_changed)
kopf.on.event(GROUP, VERSION, PLURAL, when=deleted)(model_deployment)
kopf.timer(
    GROUP, VERSION, PLURAL, id="registry", interval=15, initial_delay=15, idle=10, when=follows_alias, **RETRY
)(model_deployment)
kopf.timer(GROUP, VERSION, PLURAL, id="pods", interval=15, initial_delay=15, when=not_ready, **RETRY)(
    model_deployment
)
# read when the handlers are registered (kopf's timers are fixed then), from the same environment
ROLLOUT_POLL_SECONDS = OperatorSettings().rollout_poll_seconds
kopf.timer(GROUP, VERSION, PLURAL, id="rollout", interval=ROLLOUT_POLL_SECONDS, when=has_canary, **RETRY)(
    model_deployment
)


@kopf.on.event("apps", "v1", "deployments", labels={LABEL: kopf.PRESENT})
def server_deployment(*, type: str | None, body: kopf.Body, labels: kopf.Labels, memo: Any, **_: Any) -> None:
    """Only rollout progress matters: an update that changes none of it is skipped, and so is a
    Deployment its controller has not seen yet (nothing in it for the parent's status)."""
    progress = rollout_progress(body)
    unseen = type != "DELETED" and not (body.get("status") or {}).get("observedGeneration")
    if type == "DELETED" or (memo.get("progress") != progress and not unseen):
        reconcile_model_deployment(context_of(memo), body["metadata"]["namespace"], labels[LABEL])
        memo["progress"] = progress


def rollout_progress(deployment: Any) -> tuple[Any, ...]:
    status = deployment.get("status") or {}
    meta = deployment["metadata"]
    fields = ("observedGeneration", "replicas", "readyReplicas", "updatedReplicas", "availableReplicas")
    return (meta.get("generation"), meta.get("deletionTimestamp"), *(status.get(f) for f in fields))


@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels={LABEL: kopf.PRESENT})
def server_autoscaler(*, type: str | None, body: kopf.Body, labels: kopf.Labels, memo: Any, **_: Any) -> None:
    """What the Autoscaling condition shows changed (the controller rewrites its status every sync
    with new metric values: those alone are skipped), or the HPA was deleted (applied again)."""
    scaling = scaling_state(body)
    if type == "DELETED" or memo.get("scaling") != scaling:
        reconcile_model_deployment(context_of(memo), body["metadata"]["namespace"], labels[LABEL])
        memo["scaling"] = scaling


def scaling_state(hpa: Any) -> tuple[Any, ...]:
    status = hpa.get("status") or {}
    conditions = tuple(
        (c.get("type"), c.get("status"), c.get("reason")) for c in status.get("conditions") or []
    )
    return (status.get("currentReplicas"), status.get("desiredReplicas"), *conditions)
