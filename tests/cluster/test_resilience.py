"""Killed mid-reconcile and restarted, the operator converges: nothing duplicated, nothing orphaned."""

from __future__ import annotations

import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.manifests import drift_monitor, model_deployment, training_job
from tests.fixtures.cluster import Cluster, OperatorProcess, wait_for

pytestmark = pytest.mark.cluster
BATCH = 30


@pytest.fixture
def chaos_namespace(crds: Cluster) -> Iterator[str]:
    """A namespace only this test's operators watch (the shared operator watches kl-test-*)."""
    name = f"kl-chaos-{uuid.uuid4().hex[:6]}"
    crds.kubectl.run("create", "namespace", name)
    yield name
    crds.kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def all_ready(cluster: Cluster, namespace: str) -> bool:
    items = cluster.kubectl.items("modeldeployments", namespace)
    ready = [
        m
        for m in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (m.get("status") or {}).get("conditions") or []
        )
        and m["status"].get("observedGeneration") == m["metadata"]["generation"]
    ]
    return len(items) == BATCH and len(ready) == BATCH


def owned_counts(cluster: Cluster, namespace: str, kind: str, label: str) -> Counter[str]:
    return Counter(
        item["metadata"]["labels"][label] for item in cluster.kubectl.items(kind, namespace, label)
    )


def test_killed_mid_batch_converges_without_duplicates(
    crds: Cluster, chaos_namespace: str, tmp_path: Path
) -> None:
    ns = chaos_namespace
    docs = [model_deployment(f"m{i:02d}") for i in range(BATCH)] + [training_job(f"t{i}") for i in range(5)]
    docs.append(drift_monitor("watch", target="m00"))
    first = OperatorProcess(crds, "kl-chaos-*", tmp_path / "first.log").start()
    crds.kubectl.apply({"apiVersion": "v1", "kind": "List", "items": docs}, ns)
    wait_for(lambda: len(crds.kubectl.items("deployments", ns)) >= 3, 60, what="reconciling under way")
    first.kill(signal.SIGKILL)
    partial = len(crds.kubectl.items("deployments", ns))
    second = OperatorProcess(crds, "kl-chaos-*", tmp_path / "second.log").start()
    try:
        wait_for(
            lambda: all_ready(crds, ns),
            180,
            interval=1,
            what=f"all {BATCH} Ready after restart (had {partial})",
        )
        for kind in ("deployments", "services", "hpa", "pdb"):
            counts = owned_counts(crds, ns, kind, "kubeloop.io/modeldeployment")
            assert set(counts) == {f"m{i:02d}" for i in range(BATCH)}, kind
            each = 2 if kind == "services" else 1  # the Service and the headless `<name>-grpc`
            assert set(counts.values()) == {each}, f"duplicate {kind}: {counts}"
        jobs = owned_counts(crds, ns, "jobs", "kubeloop.io/trainingjob")
        assert jobs == Counter({f"t{i}": 1 for i in range(5)})
        wait_for(lambda: crds.kubectl.get("cronjob", "watch-check", ns), 30, what="the CronJob")

        crds.kubectl.apply(model_deployment("m00", model={"uri": "models:/churn/2"}), ns)

        def rolled() -> bool:
            md = crds.kubectl.get("modeldeployment", "m00", ns) or {}
            status = md.get("status") or {}
            return status.get("observedGeneration") == 2 and (status.get("model") or {}).get("version") == "2"

        wait_for(rolled, 60, what="edited spec rolled (observedGeneration follows)")

        crds.kubectl.run(
            "delete",
            "modeldeployments,trainingjobs,driftmonitors",
            "--all",
            "-n",
            ns,
            "--wait=true",
            "--timeout=120s",
        )
        for kind in ("deployments", "services", "hpa", "pdb", "jobs", "cronjobs", "pods"):
            crds.kubectl.wait_count(kind, ns, "app.kubernetes.io/managed-by=kubeloop", 0, 120)
    finally:
        second.kill(signal.SIGTERM)
