"""Operator throughput: time to bring N ModelDeployments to Ready, against creating their children directly.

Peer: the same Deployment/Service/HPA/PDB manifests (from the operator's own pure renderer) applied
straight to the API server with server-side apply from a pool of threads as large as the operator's:
the floor the API server, controllers and kwok set on this machine; the ratio says what the operator adds.
Prints JSON. Needs the local cluster (make cluster-up) with the CRDs applied.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes.client.exceptions import ApiException

from kubeloop.api.deployment import ModelDeploymentSpec
from kubeloop_operator.kube import Kube
from kubeloop_operator.render.common import Owner
from kubeloop_operator.render.serving import render_serving
from kubeloop_operator.settings import OperatorSettings
from tests.fixtures.ports import free_port

ROOT = Path(__file__).resolve().parent.parent

SPEC = {"model": {"uri": "models:/churn/1"}, "replicas": {"min": 1, "max": 3}}


def progress(message: str) -> None:
    print(f"[bench-operator] {message}", file=sys.stderr, flush=True)


def wait_until(count: Callable[[], int], target: int, label: str, timeout: float) -> float:
    start, last = time.monotonic(), -1
    while time.monotonic() - start < timeout:
        done = count()
        if done != last:
            progress(f"{label}: {done}/{target}")
            last = done
        if done >= target:
            return time.monotonic()
        time.sleep(0.25)
    raise TimeoutError(f"{label}: only {last}/{target} after {timeout}s")


def ready_deployments(kube: Kube, namespace: str) -> int:
    items = kube.request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments")["items"]
    return sum(1 for d in items if (d.get("status") or {}).get("readyReplicas", 0) >= 1)


def ready_model_deployments(kube: Kube, namespace: str) -> int:
    items = kube.request("GET", f"/apis/kubeloop.io/v1alpha1/namespaces/{namespace}/modeldeployments")[
        "items"
    ]
    return sum(
        1
        for m in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (m.get("status") or {}).get("conditions") or []
        )
    )


def create_namespace(kube: Kube, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kube.request(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    return name


def namespace_exists(kube: Kube, name: str) -> bool:
    try:
        kube.request("GET", f"/api/v1/namespaces/{name}")
        return True
    except ApiException as error:
        if error.status == 404:
            return False
        raise


def delete_namespace(kube: Kube, name: str, timeout: float = 600) -> None:
    """Delete and wait until it is gone: the garbage collector's work on one phase's objects must
    not run during the next phase's timing."""
    kube.request("DELETE", f"/api/v1/namespaces/{name}")
    start = time.monotonic()
    while namespace_exists(kube, name):
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"namespace {name} still terminating after {timeout}s")
        time.sleep(0.5)


def children_per_resource() -> int:
    """How many children the operator renders for SPEC: what the direct peer applies per resource."""
    owner = Owner("ModelDeployment", "kubeloop.io/v1alpha1", "m", "bench", "uid")
    return len(render_serving(owner, ModelDeploymentSpec.model_validate(SPEC), OperatorSettings()))


def direct(kube: Kube, n: int, threads: int, timeout: float) -> float:
    namespace = create_namespace(kube, "bench-direct")
    settings, spec = OperatorSettings(), ModelDeploymentSpec.model_validate(SPEC)

    def create(i: int) -> None:
        # A parent object per resource (what the user's ModelDeployment is on the operator's side).
        parent = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"m{i:04d}", "namespace": namespace},
        }
        uid = kube.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", parent)["metadata"]["uid"]
        owner = Owner("ConfigMap", "v1", f"m{i:04d}", namespace, uid)
        for child in render_serving(owner, spec, settings):
            kube.apply(child)

    start = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, range(n)))
    end = wait_until(lambda: ready_deployments(kube, namespace), n, "direct: ready Deployments", timeout)
    delete_namespace(kube, namespace)
    return end - start


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def api_requests(metrics_port: int) -> dict[str, float]:
    """The operator's own count of its reconciles' API requests, by HTTP method."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        sample.labels["method"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "kubeloop_operator_api_requests_total"
    }


def with_operator(
    kube: Kube, n: int, threads: int, timeout: float, kubeconfig: str, operator_tree: Path | None
) -> tuple[float, float, dict[str, float]]:
    namespace = create_namespace(kube, "bench-op")
    metrics_port = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": kubeconfig,
        "KUBELOOP_OPERATOR_METRICS_PORT": str(metrics_port),
        "KUBELOOP_OPERATOR_WORKER_THREADS": str(threads),
    }
    if operator_tree is not None:  # another revision's operator, against the same peer and bench
        env["PYTHONPATH"] = ":".join(
            str(operator_tree / d) for d in (".", "operator", "serving", "drift", "trainer")
        )
    log = open(ROOT / ".run/bench-operator.log", "wb")  # noqa: SIM115
    operator = subprocess.Popen(
        [sys.executable, "-m", "kubeloop", "operator", "-n", namespace, "--liveness", ""],
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        time.sleep(3)  # let it start watching; not counted

        def create(i: int) -> None:
            body = {
                "apiVersion": "kubeloop.io/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": f"m{i:04d}", "namespace": namespace},
                "spec": SPEC,
            }
            kube.request("POST", f"/apis/kubeloop.io/v1alpha1/namespaces/{namespace}/modeldeployments", body)

        start = time.monotonic()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(create, range(n)))
        end = wait_until(
            lambda: ready_model_deployments(kube, namespace), n, "operator: Ready ModelDeployments", timeout
        )
        rss = peak_rss_mib(operator.pid)
        requests = api_requests(metrics_port)
    finally:
        try:
            delete_namespace(kube, namespace)  # while the operator runs: it may hold finalizers
        finally:
            operator.terminate()
            operator.wait(timeout=30)
    return end - start, rss, requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--threads", type=int, default=OperatorSettings().worker_threads)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--operator-tree",
        type=Path,
        help="run the operator from this source tree (a worktree of another revision) to compare",
    )
    args = parser.parse_args()
    children = children_per_resource()
    kubeconfig = os.environ.get("KUBECONFIG", str(ROOT / ".run/kubeconfig"))
    os.environ["KUBECONFIG"] = kubeconfig
    kube = Kube("bench-direct")
    direct_seconds = direct(kube, args.n, args.threads, args.timeout)
    operator_seconds, rss, requests = with_operator(
        kube, args.n, args.threads, args.timeout, kubeconfig, args.operator_tree
    )
    print(
        json.dumps(
            {
                "benchmark": "operator",
                "operator_tree": str(args.operator_tree or ROOT),
                "n_model_deployments": args.n,
                "children_per_resource": children,
                "threads": args.threads,
                "direct_api_seconds": round(direct_seconds, 2),
                "operator_seconds": round(operator_seconds, 2),
                "operator_over_direct_ratio": round(operator_seconds / direct_seconds, 2),
                "operator_ready_per_second": round(args.n / operator_seconds, 1),
                "operator_peak_rss_mib": round(rss, 1),
                "operator_api_requests_per_resource": {k: round(v / args.n, 2) for k, v in requests.items()},
                "direct_api_requests_per_resource": 1 + children,  # the parent, then each child
                "peer": "same rendered children applied directly (server-side apply), same thread count",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
