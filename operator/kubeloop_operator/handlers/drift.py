"""DriftMonitor triggers: its own changes, its check Jobs' changes, a timer (why a running check's pod
does not run), its deletion."""

from __future__ import annotations

from typing import Any

import kopf

from kubeloop.api.common import GROUP, VERSION
from kubeloop_operator.context import context_of
from kubeloop_operator.handlers.options import RETRY, deleted
from kubeloop_operator.reconcile import reconcile_drift_monitor

PLURAL = "driftmonitors"
LABEL = "kubeloop.io/driftmonitor"


def drift_monitor(*, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    reconcile_drift_monitor(context_of(memo), str(namespace), name)


def drift_monitor_changed(*, namespace: str | None, name: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    reconcile_drift_monitor(context_of(memo), str(namespace), name, dict(body))


kopf.on.resume(GROUP, VERSION, PLURAL, **RETRY)(drift_monitor_changed)
kopf.on.create(GROUP, VERSION, PLURAL, **RETRY)(drift_monitor_changed)
kopf.on.update(GROUP, VERSION, PLURAL, field="spec", **RETRY)(drift_monitor_changed)
kopf.on.event(GROUP, VERSION, PLURAL, when=deleted)(drift_monitor)


def scheduled(spec: kopf.Spec, **_: Any) -> bool:
    """A check's pod that cannot run (an image pull backing off) changes without an event of its Job's."""
    return not spec.get("suspend", False)


kopf.timer(GROUP, VERSION, PLURAL, id="checks", interval=30, initial_delay=30, when=scheduled, **RETRY)(
    drift_monitor
)


@kopf.on.event("batch", "v1", "jobs", labels={LABEL: kopf.PRESENT})
def drift_check(*, body: kopf.Body, namespace: str | None, labels: kopf.Labels, memo: Any, **_: Any) -> None:
    """Only a finished check changes anything."""
    if any(c.get("status") == "True" for c in (body.get("status") or {}).get("conditions") or []):
        reconcile_drift_monitor(context_of(memo), str(namespace), labels[LABEL])
