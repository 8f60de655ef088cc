"""Why a workload's pods are not running: the scheduler's or the kubelet's word, as `kubectl get pods`
would show it (Unschedulable, ImagePullBackOff, CreateContainerConfigError, CrashLoopBackOff, ...).

Without it a TrainingJob stays Pending and a ModelDeployment RollingOut, and only the pods say why.
"""

from __future__ import annotations

from typing import Any

from kubeloop_operator.conditions import safe_reason

#: Waiting reasons of a container that is on its way to running; any other one is a problem.
STARTING = frozenset({"ContainerCreating", "PodInitializing"})
#: Enough of a message (a scheduler's list of nodes, a crashed container's last log lines) to act on.
MAX_MESSAGE = 1024


def pod_problem(pods: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(reason, message) for the newest pod that cannot run; None when none is stuck."""
    for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        problem = _unschedulable(pod) or _waiting(pod)
        if problem is not None:
            reason, message = problem
            return safe_reason(reason, "PodNotRunning"), _cut(f"pod {pod['metadata']['name']}: {message}")
    return None


def _unschedulable(pod: dict[str, Any]) -> tuple[str, str] | None:
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            return "Unschedulable", f"cannot be scheduled: {condition.get('message') or 'no node fits it'}"
    return None


def _waiting(pod: dict[str, Any]) -> tuple[str, str] | None:
    status = pod.get("status", {})
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if not reason or reason in STARTING:
            continue
        message = (
            f"container {container.get('name')} is waiting ({reason}): {waiting.get('message') or reason}"
        )
        last = (container.get("lastState") or {}).get("terminated")
        if last:  # a crash loop's own message says only "back-off"; how it ended says why
            ended = f"exit code {last.get('exitCode')}, {last.get('reason') or 'Error'}"
            said = (last.get("message") or "").strip()
            message += f"; it last ended with {ended}" + (f": {said[-MAX_MESSAGE // 2 :]}" if said else "")
        return reason, message
    return None


def _cut(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."
