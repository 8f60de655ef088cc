"""TrainingJob triggers: its own changes, its Job's changes, its deletion."""

from __future__ import annotations

from typing import Any

import kopf

from kubeloop.api.common import GROUP, VERSION
from kubeloop_operator.context import context_of
from kubeloop_operator.handlers.options import RETRY, deleted
from kubeloop_operator.reconcile import reconcile_training_job
from kubeloop_operator.settings import OperatorSettings

PLURAL = "trainingjobs"
LABEL = "kubeloop.io/trainingjob"


def training_job(*, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    reconcile_training_job(context_of(memo), str(namespace), name)


def training_job_changed(*, namespace: str | None, name: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    reconcile_training_job(context_of(memo), str(namespace), name, dict(body))


kopf.on.resume(GROUP, VERSION, PLURAL, **RETRY)(training_job_changed)
kopf.on.create(GROUP, VERSION, PLURAL, **RETRY)(training_job_changed)
kopf.on.update(GROUP, VERSION, PLURAL, field="spec", **RETRY)(training_job_changed)
kopf.on.event(GROUP, VERSION, PLURAL, when=deleted)(training_job)


def under_way(status: kopf.Status, **_: Any) -> bool:
    """Asked every poll: a running job's progress changes without an event of its own, and so does
    why a pending one's pods do not run (an image pull backing off, no node with a free GPU)."""
    return status.get("phase") in ("Pending", "Running")


# a timer, not a TemporaryError's retry: those end after RETRY's retries, a training run may not
PROGRESS_POLL_SECONDS = OperatorSettings().progress_poll_seconds
kopf.timer(GROUP, VERSION, PLURAL, id="progress", interval=PROGRESS_POLL_SECONDS, when=under_way, **RETRY)(
    training_job
)


@kopf.on.event("batch", "v1", "jobs", labels={LABEL: kopf.PRESENT})
def training_job_child(*, namespace: str | None, labels: kopf.Labels, memo: Any, **_: Any) -> None:
    reconcile_training_job(context_of(memo), str(namespace), labels[LABEL])
