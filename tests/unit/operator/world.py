"""The world the reconcile tests share: an in-memory API server, a Context around it, and what the
operator's controllers would otherwise do (finish a Job, roll out a Deployment)."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from kubeloop_operator.context import Context
from kubeloop_operator.kube import Kube, path
from kubeloop_operator.settings import OperatorSettings
from tests.unit.operator.fake_api import FakeApiServer

NS = "team-a"
Obj = dict[str, Any]


class World:
    """The fake API server, a Context around it, and the Events the operator posted."""

    def __init__(self) -> None:
        self.api = FakeApiServer()
        self.events: list[tuple[str, str, str]] = []
        self.ctx = Context(
            settings=OperatorSettings(),
            kube=Kube("test", transport=self.api),
            post=lambda _, type_, reason, message: self.events.append((type_, reason, message)),
        )

    def create(self, kind: str, name: str, spec: Obj, **meta: Any) -> None:
        body = {
            "apiVersion": "kubeloop.io/v1alpha1",
            "kind": kind,
            "metadata": {"name": name, "namespace": NS, **meta},
            "spec": spec,
        }
        self.api.put(path(kind, NS, name), body)

    def get(self, kind: str, name: str) -> Obj:
        return self.api.objects[path(kind, NS, name)]

    def status(self, kind: str, name: str) -> Obj:
        status: Obj = self.get(kind, name).get("status") or {}
        return status

    def set_status(self, kind: str, name: str, status: Obj) -> None:
        self.api.store(path(kind, NS, name), {**self.get(kind, name), "status": status})

    def edit_spec(self, kind: str, name: str, spec: Obj) -> None:
        self.api.store(path(kind, NS, name), {**self.get(kind, name), "spec": spec}, spec_changed=True)

    def names(self, kind: str) -> list[str]:
        prefix = path(kind, NS) + "/"
        return sorted(key.removeprefix(prefix) for key in self.api.objects if key.startswith(prefix))


def condition(status: Obj, type_: str) -> Obj:
    found: Obj = next(c for c in status["conditions"] if c["type"] == type_)
    return found


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


MODEL = {"model": {"uri": "s3://models/churn.onnx"}, "replicas": {"min": 2, "max": 4}}
TRAINING = {"dataset": {"uri": "s3://data/train.parquet"}}


def roll_out(world: World, name: str) -> None:
    """What the Deployment controller and kubelets do: every replica updated and ready."""
    deployment = world.get("Deployment", name)
    replicas = deployment["spec"].get("replicas", 2)
    counts = ("replicas", "readyReplicas", "updatedReplicas", "availableReplicas")
    status = {"observedGeneration": deployment["metadata"]["generation"], **dict.fromkeys(counts, replicas)}
    world.api.store(path("Deployment", NS, name), {**deployment, "status": status})


def finish_job(world: World, name: str, summary: str) -> None:
    job = world.get("Job", name)
    done = {"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T02:00:00Z"}
    times = {"startTime": "2026-01-01T01:00:00Z", "completionTime": "2026-01-01T02:00:00Z"}
    world.api.store(path("Job", NS, name), {**job, "status": {"conditions": [done], **times}})
    terminated = {"terminated": {"exitCode": 0, "reason": "Completed", "message": summary}}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{name}-abc", "namespace": NS, "labels": {"job-name": name}},
        "status": {"phase": "Succeeded", "containerStatuses": [{"state": terminated}]},
    }
    world.api.put(path("Pod", NS, f"{name}-abc"), pod)
