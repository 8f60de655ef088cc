"""Building blocks every renderer shares: names, labels, ownership, secure pod defaults."""

from __future__ import annotations

from typing import Any

from kubeloop.api.common import EnvVar, PodEnvironment, Resources, Scheduling

THREADS_ENV = "OMP_NUM_THREADS"

Manifest = dict[str, Any]
MANAGED_BY = {"app.kubernetes.io/managed-by": "kubeloop"}
RUN_AS_USER = 65532  # the images' non-root user
# A Job's podFailurePolicy rule: a pod that was disrupted (evicted, preempted, its node drained) is
# replaced without counting against the Job's retries.
IGNORE_DISRUPTION: dict[str, Any] = {
    "action": "Ignore",
    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
}


class Owner:
    """The parent resource: what every child needs to know about it."""

    def __init__(self, kind: str, api_version: str, name: str, namespace: str, uid: str, generation: int = 1):
        self.kind, self.api_version, self.name = kind, api_version, name
        self.namespace, self.uid, self.generation = namespace, uid, generation

    @classmethod
    def from_body(cls, body: Any) -> Owner:
        meta = body["metadata"]
        return cls(
            body["kind"],
            body["apiVersion"],
            meta["name"],
            meta["namespace"],
            meta["uid"],
            meta.get("generation", 1),
        )

    def labels(self) -> dict[str, str]:
        return {**MANAGED_BY, f"kubeloop.io/{self.kind.lower()}": self.name}

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def metadata(self, name: str, extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": self.namespace,
            "labels": {**self.labels(), **(extra_labels or {})},
            "annotations": {"kubeloop.io/generation": str(self.generation)},
            "ownerReferences": [self.reference()],
        }


def restricted_container_security() -> dict[str, Any]:
    """The restricted Pod Security Standard, container part."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resource_requirements(resources: Resources) -> dict[str, Any]:
    """Requests equal limits (Guaranteed QoS); GPUs are limits, as extended resources must be."""
    amounts: dict[str, Any] = {}
    if resources.cpu is not None:
        amounts["cpu"] = str(resources.cpu)
    if resources.memory is not None:
        amounts["memory"] = str(resources.memory)
    if resources.gpus:
        amounts[resources.gpu_resource_name] = str(resources.gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)} if amounts else {}


def scheduling(spec: Scheduling, resources: Resources | None = None) -> dict[str, Any]:
    """Node selector and tolerations; GPU pods tolerate the usual GPU taint unless told otherwise."""
    tolerations = [t.wire() for t in spec.tolerations]
    if (
        resources is not None
        and resources.gpus
        and not any(t.get("key") == resources.gpu_resource_name for t in tolerations)
    ):
        tolerations.append({"key": resources.gpu_resource_name, "operator": "Exists", "effect": "NoSchedule"})
    out: dict[str, Any] = {}
    if spec.node_selector:
        out["nodeSelector"] = dict(spec.node_selector)
    if tolerations:
        out["tolerations"] = tolerations
    return out


def env_list(literal: dict[str, str], user: list[EnvVar]) -> list[dict[str, Any]]:
    """Our variables first, the user's after: a user's variable of the same name wins."""
    mine = [{"name": k, "value": v} for k, v in literal.items() if k not in {e.name for e in user}]
    return mine + [e.wire() for e in user]


def writable_tmp() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A read-only root filesystem still needs a scratch /tmp: (volumes, mounts)."""
    return [{"name": "tmp", "emptyDir": {}}], [{"name": "tmp", "mountPath": "/tmp"}]


def pod_identity(spec: PodEnvironment) -> dict[str, Any]:
    """The pod's ServiceAccount, if any; its API token is never mounted (the workloads need none)."""
    identity: dict[str, Any] = {"automountServiceAccountToken": False}
    if spec.service_account_name:
        identity["serviceAccountName"] = spec.service_account_name
    return identity


def cpu_threads_env(spec: PodEnvironment, processes: int = 1) -> list[dict[str, Any]]:
    """OMP_NUM_THREADS: the container's CPU limit rounded up (the downward API's: 500m -> 1; without a
    limit, the node's allocatable CPUs). PyTorch, OpenBLAS, MKL and Arrow size their thread pools by it;
    unset, they start one thread per node CPU and a CPU-limited pod spends its quota on contention. With
    several processes a pod it stays unset: torchrun then gives each process one thread. The user's own
    wins."""
    if processes > 1 or any(e.name == THREADS_ENV for e in spec.env):
        return []
    limit = {"resource": "limits.cpu", "divisor": "1"}
    return [{"name": THREADS_ENV, "valueFrom": {"resourceFieldRef": limit}}]


def container_env(literal: dict[str, str], spec: PodEnvironment) -> dict[str, Any]:
    """`env` (ours, then the user's) and `envFrom` (the user's Secrets/ConfigMaps, by reference)."""
    env: dict[str, Any] = {}
    if literal or spec.env:
        env["env"] = env_list(literal, spec.env)
    if spec.env_from:
        env["envFrom"] = [source.wire() for source in spec.env_from]
    return env
