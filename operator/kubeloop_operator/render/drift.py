"""DriftMonitor -> CronJob running `kubeloop drift check` against the target's payload log."""

from __future__ import annotations

from typing import Any

from kubeloop.api.deployment import PayloadLogging
from kubeloop.api.drift import DriftCheckConfig, DriftMonitorSpec
from kubeloop.contracts.drift_check import DriftCheckArgs
from kubeloop_operator.render.common import (
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
from kubeloop_operator.render.names import child_name
from kubeloop_operator.render.serving import payload_volume
from kubeloop_operator.settings import OperatorSettings

CHECK_DEADLINE_SECONDS = 3600


def cronjob_name(owner: Owner) -> str:
    return child_name(owner.name, "check", limit=52)  # CronJob names get an 11-character Job suffix


def report_uri(owner: Owner, spec: DriftMonitorSpec, payload: PayloadLogging) -> str:
    base = spec.report_uri or f"{payload.sink_uri.rstrip('/')}/_reports"
    return f"{base.rstrip('/')}/{owner.namespace}/{owner.name}"


def check_args(owner: Owner, spec: DriftMonitorSpec, payload: PayloadLogging) -> DriftCheckArgs:
    """One check; its config is exactly the DriftCheckConfig part of the spec."""
    reports = report_uri(owner, spec, payload)
    return DriftCheckArgs(
        reference=spec.reference.uri,
        payload_log=payload.sink_uri,
        model=spec.target.model_deployment,
        config=DriftCheckConfig.model_validate(spec.model_dump(include=set(DriftCheckConfig.model_fields))),
        window_duration=spec.window.duration,
        last_rows=spec.window.last_rows,
        report_uri=reports,
        profile_cache=f"{reports}/reference-profile",
    )


def render_cronjob(
    owner: Owner, spec: DriftMonitorSpec, payload: PayloadLogging, settings: OperatorSettings
) -> Manifest:
    volumes, mounts = writable_tmp()
    extra_volumes, extra_mounts = payload_volume(payload)
    env = container_env({}, spec)
    env["env"] = cpu_threads_env(spec) + env.get("env", [])
    container: dict[str, Any] = {
        "name": "check",
        "image": spec.image or settings.drift_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": check_args(owner, spec, payload).command(),  # whatever the image's entrypoint
        **env,
        "securityContext": restricted_container_security(),
        "volumeMounts": mounts + extra_mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    requirements = resource_requirements(spec.resources)
    if requirements:
        container["resources"] = requirements
    pod_labels = {**owner.labels(), "kubeloop.io/component": "drift-check"}
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": owner.metadata(cronjob_name(owner)),
        "spec": {
            "schedule": spec.schedule,
            "suspend": spec.suspend,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": CHECK_DEADLINE_SECONDS,
                    "template": {
                        "metadata": {"labels": pod_labels},
                        "spec": {
                            "restartPolicy": "Never",
                            "securityContext": restricted_pod_security(),
                            **pod_identity(spec),
                            "containers": [container],
                            "volumes": volumes + extra_volumes,
                            **scheduling(spec, spec.resources),
                        },
                    },
                },
            },
        },
    }
