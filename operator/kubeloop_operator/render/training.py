"""TrainingJob -> batch/v1 Job (+ a headless Service for distributed rendezvous)."""

from __future__ import annotations

import json
from typing import Any

from kubeloop.api.processes import processes_per_worker
from kubeloop.api.training import TrainingJobSpec
from kubeloop_operator.render.common import (
    IGNORE_DISRUPTION,
    Manifest,
    Owner,
    container_env,
    cpu_threads_env,
    pod_identity,
    resource_requirements,
    restricted_container_security,
    restricted_pod_security,
    scheduling,
    writable_tmp,
)
from kubeloop_operator.render.data_sources import data_source_env, data_source_volumes
from kubeloop_operator.render.names import child_name
from kubeloop_operator.render.processes import launched, launcher_env
from kubeloop_operator.render.trial_workers import has_trial_workers, with_trial_workers
from kubeloop_operator.settings import OperatorSettings

RENDEZVOUS_PORT = 29500
COMPLETION_INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
BUILTIN_COMMAND = ["kubeloop", "train"]
TERMINATION_GRACE_SECONDS = 30  # above the trainer's 20 s stop grace, so its summary gets written
ATTEMPT_ANNOTATION = "kubeloop.io/gang-attempt"  # which gang (0, 1, ...) a distributed Job runs
ATTEMPT_ENV = "KUBELOOP_GANG_ATTEMPT"
# Any worker that fails (a non-zero exit, or a disruption: eviction, preemption, node drain) fails
# the whole Job at once: the Job controller terminates the survivors instead of leaving them hanging
# in their collectives, and the operator starts a fresh gang (reconcile/gang.py).
GANG_FAILURE_POLICY: dict[str, Any] = {
    "rules": [
        {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {
            "action": "FailJob",
            "onExitCodes": {"containerName": "trainer", "operator": "NotIn", "values": [0]},
        },
    ]
}
# A single worker's pod that was disrupted is replaced by the Job controller without counting
# against backoffLimit; the new pod resumes from the run's last epoch checkpoint
# (kubeloop_trainer.checkpoints). Any other failure counts, as without a policy.
SINGLE_FAILURE_POLICY: dict[str, Any] = {"rules": [IGNORE_DISRUPTION]}


def job_name(owner: Owner) -> str:
    return child_name(owner.name, "", limit=52)  # Job names become pod-name prefixes and labels


def training_env(owner: Owner, spec: TrainingJobSpec, settings: OperatorSettings) -> dict[str, str]:
    """What every training pod is told: who it trains for, where MLflow is, the spec itself.

    MLflow 3 sends usage telemetry to its vendor by default; a pod of the user's own image is told to
    keep it in the cluster too (as ours are by their image), unless the user's env says otherwise.
    """
    return {
        "KUBELOOP_TRAINING_SPEC": json.dumps(spec.wire(), separators=(",", ":"), sort_keys=True),
        "KUBELOOP_TRAININGJOB_NAME": owner.name,
        "KUBELOOP_TRAININGJOB_NAMESPACE": owner.namespace,
        "KUBELOOP_TRAININGJOB_UID": owner.uid,
        "MLFLOW_TRACKING_URI": spec.mlflow.tracking_uri or settings.mlflow_tracking_uri,
        "MLFLOW_EXPERIMENT_NAME": spec.mlflow.experiment or owner.namespace,
        "MLFLOW_RUN_NAME": owner.name,
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def master_addr(owner: Owner) -> str:
    """Rank 0's stable DNS name behind the headless Service."""
    job = job_name(owner)
    return f"{job}-0.{job}.{owner.namespace}.svc"


def rendezvous_env(owner: Owner, workers: int, processes: int = 1) -> list[dict[str, Any]]:
    """torch.distributed env:// rendezvous at rank 0's pod; several processes a pod: torchrun's."""
    if processes > 1:
        index = {"fieldRef": {"fieldPath": COMPLETION_INDEX}}
        return launcher_env(master_addr(owner), RENDEZVOUS_PORT, workers, processes, index)
    return [
        {"name": "MASTER_ADDR", "value": master_addr(owner)},
        {"name": "MASTER_PORT", "value": str(RENDEZVOUS_PORT)},
        {"name": "WORLD_SIZE", "value": str(workers)},
        {"name": "RANK", "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX}}},
        {"name": "LOCAL_RANK", "value": "0"},
    ]


def pod_spec(
    owner: Owner, spec: TrainingJobSpec, settings: OperatorSettings, attempt: int = 0
) -> dict[str, Any]:
    volumes, mounts = writable_tmp()
    data_volumes, data_mounts = data_source_volumes(spec.dataset)
    volumes, mounts = volumes + data_volumes, mounts + data_mounts
    env = container_env(training_env(owner, spec, settings), spec)
    processes = processes_per_worker(spec)
    # ours first: a user variable of the same name comes later and wins
    env["env"] = cpu_threads_env(spec, processes) + data_source_env(spec.dataset) + env["env"]
    if spec.workers > 1 or processes > 1:
        env["env"] = rendezvous_env(owner, spec.workers, processes) + env["env"]
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    if spec.workers > 1:  # which gang this is: a restarted gang resumes from its checkpoint
        env["env"] = [{"name": ATTEMPT_ENV, "value": str(attempt)}, *env["env"]]
    container: dict[str, Any] = {
        "name": "trainer",
        "image": spec.image or settings.trainer_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": launched(spec.command or BUILTIN_COMMAND, processes),
        **env,
        "securityContext": restricted_container_security(),
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if spec.args:
        container["args"] = spec.args
    if spec.workers > 1:
        container["ports"] = [{"name": "rendezvous", "containerPort": RENDEZVOUS_PORT}]
    requirements = resource_requirements(spec.resources)
    if requirements:
        container["resources"] = requirements
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": restricted_pod_security(),
        **pod_identity(spec),
        "containers": [container],
        "volumes": volumes,
        **scheduling(spec, spec.resources),
    }
    if spec.workers > 1:
        pod["subdomain"] = job_name(owner)
    return pod


def render_job(owner: Owner, spec: TrainingJobSpec, settings: OperatorSettings, attempt: int = 0) -> Manifest:
    """The training Job; with workers > 1, gang number ``attempt`` (see GANG_FAILURE_POLICY)."""
    policy = spec.run_policy
    job_spec: dict[str, Any] = {
        "backoffLimit": policy.backoff_limit,
        "suspend": policy.suspend,
        "template": {
            "metadata": {"labels": {**owner.labels(), "kubeloop.io/component": "trainer"}},
            "spec": pod_spec(owner, spec, settings, attempt),
        },
    }
    if policy.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = policy.active_deadline_seconds
    if policy.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = policy.ttl_seconds_after_finished
    metadata = owner.metadata(job_name(owner))
    if spec.workers > 1:
        job_spec |= {
            "completionMode": "Indexed",
            "completions": spec.workers,
            "parallelism": spec.workers,
            "podFailurePolicy": GANG_FAILURE_POLICY,
        }
        metadata["annotations"][ATTEMPT_ANNOTATION] = str(attempt)
    else:
        job_spec["podFailurePolicy"] = SINGLE_FAILURE_POLICY
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec}


def render_rendezvous_service(owner: Owner) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owner.metadata(job_name(owner)),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": owner.labels(),
            "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT, "targetPort": RENDEZVOUS_PORT}],
        },
    }


def render_training(
    owner: Owner, spec: TrainingJobSpec, settings: OperatorSettings, attempt: int = 0
) -> list[Manifest]:
    """Every child of a TrainingJob (``attempt``: the gang's number, workers > 1)."""
    job = render_job(owner, spec, settings, attempt)
    children = [with_trial_workers(job, spec) if has_trial_workers(spec) else job]
    if spec.workers > 1:
        children.append(render_rendezvous_service(owner))
    return children
