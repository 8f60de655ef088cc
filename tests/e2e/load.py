"""Steady OIP load through a Service from a pod inside the cluster, counting every request (`kubeloop
load` in the kubeloop image); from this host, `kubeloop.loadgen.SteadyLoad`."""

from __future__ import annotations

import json
import uuid
from typing import Any

from kubeloop_operator.render.common import restricted_container_security, restricted_pod_security
from tests.e2e.platform import SYSTEM_NAMESPACE, Platform, service_port
from tests.fixtures.cluster import wait_for

STOP_FILE = "/tmp/stop"


class PodLoad:
    """`kubeloop load` in a pod of `namespace`, sending to `http://SERVICE.NAMESPACE.svc:PORT{path}`.

    A client inside the cluster reaches the Service as other clients do (ClusterIP, connections balanced
    by kube-proxy), where a port-forward from this host pins one pod and fails while that pod is replaced.
    """

    def __init__(
        self, platform: Platform, namespace: str, service: str, path: str, body: bytes, rate: float
    ) -> None:
        self.platform, self.namespace, self.service, self.path = platform, namespace, service, path
        self.body, self.rate = body, rate
        self.name = f"load-{uuid.uuid4().hex[:8]}"
        self.result: dict[str, Any] = {}

    def __enter__(self) -> PodLoad:
        kubectl = self.platform.kubectl
        kubectl.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": self.name},
                "data": {"body.json": self.body.decode()},
            },
            self.namespace,
        )
        kubectl.apply(self.pod(), self.namespace)
        wait_for(lambda: self.phase() == "Running", 300, what=f"load pod {self.name} running")
        return self

    def __exit__(self, *_: object) -> None:
        kubectl = self.platform.kubectl
        try:
            stop = f"open({STOP_FILE!r}, 'w').close()"
            kubectl.run("exec", "-n", self.namespace, self.name, "--", "python", "-c", stop)
            wait_for(lambda: self.phase() in ("Succeeded", "Failed"), 120, what=f"{self.name} done")
            logs = kubectl.run("logs", "-n", self.namespace, self.name).stdout.strip().splitlines()
            self.result = json.loads(logs[-1]) if logs else {}
        finally:
            delete = ("delete", "pod,configmap", self.name, "-n", self.namespace, "--wait=false")
            kubectl.run(*delete, check=False)

    def summary(self) -> dict[str, Any]:
        assert self.result, f"no summary from {self.name} (stopped?)"
        return self.result

    def phase(self) -> str:
        pod = self.platform.kubectl.get("pod", self.name, self.namespace)
        return str(((pod or {}).get("status") or {}).get("phase", ""))

    def url(self) -> str:
        service = self.platform.kubectl.get("service", self.service, self.namespace)
        assert service is not None, f"no Service {self.namespace}/{self.service}"
        return f"http://{self.service}.{self.namespace}.svc:{service_port(service)['port']}{self.path}"

    def pod(self) -> dict[str, Any]:
        """Restricted Pod Security Standard; the kubeloop image the operator runs."""
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": self.name, "labels": {"app.kubernetes.io/name": "kubeloop-load"}},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "securityContext": restricted_pod_security(),
                "containers": [
                    {
                        "name": "load",
                        "image": operator_image(self.platform),
                        "args": [
                            "load",
                            self.url(),
                            "--body=/body/body.json",
                            f"--rate={self.rate}",
                            f"--stop-file={STOP_FILE}",
                        ],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                        "securityContext": restricted_container_security(),
                        "volumeMounts": [
                            {"name": "body", "mountPath": "/body", "readOnly": True},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "body", "configMap": {"name": self.name}},
                    {"name": "tmp", "emptyDir": {}},
                ],
            },
        }


def operator_image(platform: Platform) -> str:
    """The kubeloop image the chart installed (local or pushed to a registry), with its pull policy's tag."""
    return str(operator_container(platform)["image"])


def trainer_image(platform: Platform) -> str:
    """The trainer image the chart set as the operator's default for TrainingJobs."""
    env = {var["name"]: var.get("value") for var in operator_container(platform).get("env", [])}
    return str(env["KUBELOOP_OPERATOR_TRAINER_IMAGE"])


def operator_container(platform: Platform) -> dict[str, Any]:
    for deployment in platform.kubectl.items("deployments", SYSTEM_NAMESPACE):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if container["name"] == "operator":
                return dict(container)
    raise AssertionError(f"no operator Deployment in {SYSTEM_NAMESPACE}")
