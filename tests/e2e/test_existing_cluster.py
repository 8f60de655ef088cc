"""How `make demo` reaches a cluster that is not this machine's node, tried on the local node: the chart's
MLflow, the S3 server and a workload's Service through `kubectl port-forward` instead of node ports, and a
forward that follows its pod being replaced (a rollout), on the same local URL."""

from __future__ import annotations

import http.client
import urllib.request
from typing import Any

import pytest

from kubeloop_operator.render.common import restricted_container_security, restricted_pod_security
from tests.e2e.platform import Platform
from tests.e2e.target import Target
from tests.fixtures.cluster import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SERVE = "mkdir -p /tmp/www && hostname >/tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"


def web(namespace: str) -> list[dict[str, Any]]:
    """busybox httpd answering with its pod's name (the node's local image), and its Service."""
    labels = {"app": "forwarded-web"}
    pod = {
        "securityContext": restricted_pod_security(),
        "containers": [
            {
                "name": "web",
                "image": "localhost/kubeloop/busybox:v1",
                "imagePullPolicy": "Never",
                "command": ["/bin/sh", "-c", SERVE],
                "ports": [{"containerPort": 8080, "name": "http"}],
                "readinessProbe": {"httpGet": {"path": "/index.html", "port": 8080}, "periodSeconds": 1},
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                "securityContext": restricted_container_security(),
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "forwarded-web", "namespace": namespace},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "forwarded-web", "namespace": namespace},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        },
    ]


def page(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text: str = response.read().decode().strip()
            return text
    except (OSError, http.client.HTTPException):  # refused while kubectl restarts, or cut mid-answer
        return None


def test_services_are_reached_through_port_forwards(platform: Platform, e2e_namespace: str) -> None:
    there = Platform(
        platform.kubectl, platform.kubeconfig, Target("existing", str(platform.kubeconfig), "e2e")
    )
    try:
        # The chart's MLflow and the S3 server, as the demo reaches them on an existing cluster.
        there.mlflow("registered-models/search", max_results="1")  # raises unless MLflow answers
        uri = f"s3://kubeloop/datasets/{e2e_namespace}/forwarded.parquet"
        there.put_table(uri, {"x": [1, 2, 3]})
        assert platform.s3().exists(uri), "written through the forward, read through the node port"
        assert {key[1] for key in there.forwards} == {"kubeloop-mlflow", "s3"}

        for manifest in web(e2e_namespace):
            platform.apply(manifest, e2e_namespace)
        platform.kubectl.run(
            "rollout", "status", "-n", e2e_namespace, "deployment/forwarded-web", "--timeout=180s"
        )
        url = there.service_url("forwarded-web", e2e_namespace)
        first = wait_for(lambda: page(f"{url}/index.html"), 60, what="the first pod through the forward")
        assert first.startswith("forwarded-web-")

        # The pod goes away (as in a rollout): kubectl exits, and is restarted on the same local port.
        platform.kubectl.run("delete", "pod", "-n", e2e_namespace, first, "--grace-period=1", "--wait=true")

        def replaced() -> str | None:
            name = page(f"{url}/index.html")
            return name if name and name != first else None

        second = wait_for(
            replaced,
            180,
            interval=1,
            what="the replacement pod through the same forward",
        )
        assert second.startswith("forwarded-web-")
        assert there.service_url("forwarded-web", e2e_namespace) == url
    finally:
        for forward in there.forwards.values():
            forward.close()
