"""A tuning TrainingJob with ``tuning.storage``: its Job becomes ``tuning.parallelism`` trial workers.

The Job is Indexed (completions = parallelism = N): every pod is a trial worker of one Optuna study in
the database the Secret names, its index from the completion-index annotation. Index 0 waits for the
study to end and finalises (the status reads its summary). A killed or evicted worker is replaced
alone (``backoffLimitPerIndex``; disruptions do not count) and rejoins the study while the others
carry on; a worker that reports its own failure (exit 1) fails its index without retries.
"""

from __future__ import annotations

import copy
from typing import Any

from kubeloop.api.training import TrainingJobSpec
from kubeloop.contracts.trial_workers import COUNT_ENV, INDEX_ENV, STORAGE_ENV
from kubeloop_operator.render.common import IGNORE_DISRUPTION, Manifest

COMPLETION_INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
WORKER_RETRIES = 3  # per index: a replaced worker loses only the trial it was running
TRAINER_FAILED_EXIT = 1  # `kubeloop train` reports its own failure (bad spec, data): retrying cannot help


def has_trial_workers(spec: TrainingJobSpec) -> bool:
    return spec.tuning is not None and spec.tuning.storage is not None


def trial_worker_env(spec: TrainingJobSpec) -> list[dict[str, Any]]:
    assert spec.tuning is not None and spec.tuning.storage is not None
    secret = spec.tuning.storage.secret_ref
    return [
        {"name": INDEX_ENV, "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX}}},
        {"name": COUNT_ENV, "value": str(spec.tuning.parallelism)},
        {"name": STORAGE_ENV, "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.key}}},
    ]


def failure_policy() -> dict[str, Any]:
    return {
        "rules": [
            IGNORE_DISRUPTION,
            {
                "action": "FailIndex",
                "onExitCodes": {
                    "containerName": "trainer",
                    "operator": "In",
                    "values": [TRAINER_FAILED_EXIT],
                },
            },
        ]
    }


def with_trial_workers(job: Manifest, spec: TrainingJobSpec) -> Manifest:
    """``job`` (the single-pod training Job) as N indexed trial workers sharing one study."""
    assert spec.tuning is not None
    workers = spec.tuning.parallelism
    out = copy.deepcopy(job)
    job_spec = out["spec"]
    job_spec.pop("backoffLimit", None)  # per index instead; a global limit would end all workers at once
    job_spec |= {
        "completionMode": "Indexed",
        "completions": workers,
        "parallelism": workers,
        "backoffLimitPerIndex": max(WORKER_RETRIES, spec.run_policy.backoff_limit),
        "podFailurePolicy": failure_policy(),
    }
    container = job_spec["template"]["spec"]["containers"][0]
    container["env"] = trial_worker_env(spec) + container.get("env", [])
    return out
