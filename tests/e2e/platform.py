"""kubeloop installed on a real node (hack/platform.sh), and what tests and the demo need to drive it.

The same on a cluster KUBECONFIG reaches (target "existing", hack/platform.sh up-existing): only the way
this host reaches Services differs (port-forwards there, loopback node ports on the local node).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import s3fs

from tests.e2e.forward import PortForward
from tests.e2e.target import LOCAL, Target, local_kubeconfig
from tests.fixtures.cluster import Kubectl, wait_for

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_NAMESPACE = "kubeloop-system"


@dataclass
class Platform:
    kubectl: Kubectl
    kubeconfig: Path
    target: Target = LOCAL
    forwards: dict[tuple[str, str, int], PortForward] = field(default_factory=dict)

    @classmethod
    def up(cls, log: Path | None, target: Target = LOCAL) -> Platform:
        """Bring the node (or, on an existing cluster, the pushed images' S3 server), the images and the
        chart up (idempotent); its progress goes to `log` (None: stderr)."""
        command, env = "up", None
        if target.mode == "existing":
            assert target.kubeconfig, "an existing cluster has a KUBECONFIG"
            command, env = "up-existing", {**os.environ, "KUBECONFIG": target.kubeconfig}
        stdout = run_logged(["hack/platform.sh", command], log, 2400, env=env, keep_stdout=True)
        exports = dict(re.findall(r"(\w+)=(\S+)", stdout.strip().splitlines()[-1]))
        kubeconfig = Path(exports["KUBECONFIG"])
        binary = Path(exports["PATH"].split(":", 1)[0]) / "kubectl"
        return cls(Kubectl(binary, kubeconfig), kubeconfig, target)

    @property
    def s3_env(self) -> Path:
        """The S3 credentials for this host, as a file to source (hack/addons/s3-secret.sh writes it)."""
        if self.target.mode == "existing":
            return ROOT / ".run/s3.env"
        return local_kubeconfig(os.environ).with_name("s3.env")

    # --- reaching Services from this host: loopback node ports, never ClusterIPs ---

    def service_url(self, name: str, namespace: str, port: str | int | None = None) -> str:
        """`http://127.0.0.1:<port>` reaching a Service: a port-forward on an existing cluster, a node
        port on the local node."""
        if self.target.mode == "existing":
            return self.forwarded_url(name, namespace, port)
        return self.node_port_url(name, namespace, port)

    def node_port_url(self, name: str, namespace: str, port: str | int | None = None) -> str:
        """`http://127.0.0.1:<nodePort>` of a Service (made a NodePort Service if it is not one).

        kube-proxy forwards loopback node ports to the Service's endpoints, balancing connections as for
        any client. ClusterIPs are not dialled from the host: this machine's egress proxy takes over
        connections to some ports of addresses it does not route (80, 8080), and load tests stay on
        loopback and on the node's own pod network.
        """
        service = self.kubectl.get("service", name, namespace)
        assert service is not None, f"no Service {namespace}/{name}"
        if service["spec"].get("type", "ClusterIP") == "ClusterIP":
            self.kubectl.run("patch", "service", name, "-n", namespace, "-p", '{"spec":{"type":"NodePort"}}')
            service = self.kubectl.get("service", name, namespace)
            assert service is not None
        node_port = int(service_port(service, port)["nodePort"])
        wait_for(lambda: accepts(node_port), 60, what=f"kube-proxy forwarding node port {node_port}")
        return f"http://127.0.0.1:{node_port}"

    def forwarded_url(self, name: str, namespace: str, port: str | int | None = None) -> str:
        """`http://127.0.0.1:<local port>` of a `kubectl port-forward svc/NAME`, kept till exit."""
        service = self.kubectl.get("service", name, namespace)
        assert service is not None, f"no Service {namespace}/{name}"
        key = (namespace, name, int(service_port(service, port)["port"]))
        if key not in self.forwards:
            forward = PortForward(self.kubectl.binary, self.kubeconfig, *key)
            forward.start()
            atexit.register(forward.close)
            self.forwards[key] = forward
        return f"http://127.0.0.1:{self.forwards[key].local_port}"

    def how_to_reach(self, name: str, namespace: str) -> str:
        """A Service's URL for someone after this process: a node port here; a port-forward command there."""
        if self.target.mode == "existing":
            service = self.kubectl.get("service", name, namespace)
            assert service is not None, f"no Service {namespace}/{name}"
            port = service["spec"]["ports"][0]["port"]
            return f"(kubectl port-forward -n {namespace} svc/{name} 8080:{port}) http://127.0.0.1:8080"
        return self.node_port_url(name, namespace)

    def secret(self, name: str, namespace: str) -> dict[str, str]:
        secret = self.kubectl.get("secret", name, namespace)
        assert secret is not None, f"no Secret {namespace}/{name}"
        return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}

    def s3(self) -> s3fs.S3FileSystem:
        """The in-cluster S3 server, with the credentials its Secret holds, reached from this host."""
        creds = self.secret("kubeloop-s3", SYSTEM_NAMESPACE)
        endpoint = self.service_url("s3", SYSTEM_NAMESPACE)
        return s3fs.S3FileSystem(
            key=creds["AWS_ACCESS_KEY_ID"],
            secret=creds["AWS_SECRET_ACCESS_KEY"],
            endpoint_url=endpoint,
            skip_instance_cache=True,
            use_listings_cache=False,
        )

    def put_table(self, uri: str, columns: dict[str, Any]) -> None:
        with self.s3().open(uri, "wb") as sink:
            pq.write_table(pa.table(columns), sink)

    def mlflow(self, path: str, **params: str) -> dict[str, Any]:
        """GET the in-cluster MLflow's REST API."""
        base = self.service_url("kubeloop-mlflow", SYSTEM_NAMESPACE)
        query = "&".join(f"{k}={v}" for k, v in params.items())
        request = urllib.request.Request(
            f"{base}/api/2.0/mlflow/{path}?{query}", headers={"Host": "localhost"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body: dict[str, Any] = json.load(response)
            return body

    def prometheus(self, path: str, **params: str) -> dict[str, Any]:
        """GET the in-cluster Prometheus's HTTP API (e.g. /api/v1/query with query=...)."""
        base = self.service_url("kubeloop-prometheus", SYSTEM_NAMESPACE)
        with urllib.request.urlopen(f"{base}{path}?{urllib.parse.urlencode(params)}", timeout=10) as response:
            body: dict[str, Any] = json.load(response)
            return body

    def operator_metrics(self) -> str:
        base = self.service_url("kubeloop-operator-metrics", SYSTEM_NAMESPACE)
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            text: str = response.read().decode()
            return text

    # --- resources ---

    def apply(self, manifest: dict[str, Any], namespace: str) -> None:
        self.kubectl.apply(manifest, namespace)

    def wait_status(
        self, kind: str, name: str, namespace: str, check: Any, timeout: float, what: str
    ) -> dict[str, Any]:
        """Poll until check(status) is truthy; an AssertionError from check (e.g. a Failed phase) fails at
        once; on either failure the message shows the status and recent events."""
        final: list[AssertionError] = []

        def done() -> dict[str, Any] | None:
            obj = self.kubectl.get(kind, name, namespace)
            if not obj:
                return None
            try:
                return obj if check(obj.get("status") or {}) else None
            except AssertionError as error:  # wait_for would retry it until the timeout
                final.append(error)
                return obj

        try:
            obj = wait_for(done, timeout, interval=2, what=what)
            if final:
                raise final[0]
            return obj
        except AssertionError as error:
            events = self.kubectl.run(
                "get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False
            )
            pods = self.kubectl.run("get", "pods", "-n", namespace, "-o", "wide", check=False)
            raise AssertionError(
                f"{error}\n--- pods ---\n{pods.stdout}\n--- events ---\n{events.stdout[-4000:]}"
            ) from None

    def logs(self, selector: str, namespace: str) -> str:
        return self.kubectl.run(
            "logs", "-n", namespace, "-l", selector, "--tail=80", "--prefix", check=False
        ).stdout


def wait_for_e2e_deps(log: Path | None) -> None:
    """What the node needs is built: wait for `make test`'s background build (hack/e2e-deps.sh start),
    or build it here when none finished; its progress goes to `log` (None: stderr)."""
    run_logged(["hack/e2e-deps.sh", "wait"], log, 3600)


def run_logged(
    command: list[str],
    log: Path | None,
    timeout: float,
    env: dict[str, str] | None = None,
    keep_stdout: bool = False,
) -> str:
    """Run a script of the repository, its output appended to `log` (None: stderr), and return its
    stdout when `keep_stdout` (else that goes to the log too); on failure raise with the log's tail."""
    with log.open("ab") if log else contextlib.nullcontext(None) as out:
        done = subprocess.run(
            [ROOT / command[0], *command[1:]],
            stdout=subprocess.PIPE if keep_stdout else out,
            stderr=out,
            env=env,
            timeout=timeout,
            check=False,
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log else ""
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{tail}")
    return done.stdout.decode() if keep_stdout else ""


def accepts(port: int) -> bool:
    """Whether 127.0.0.1:port takes a TCP connection (kube-proxy programs a new node port within seconds)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


@contextmanager
def namespace(platform: Platform, name: str, keep: bool = False) -> Iterator[str]:
    """A namespace under the restricted Pod Security Standard, with the S3 credentials Secret."""
    k = platform.kubectl
    k.run("create", "namespace", name)
    k.run("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    subprocess.run(
        [ROOT / "hack/platform.sh", "s3-secret", name],
        check=True,
        env={**os.environ, "KUBECONFIG": str(platform.kubeconfig)},
    )
    try:
        yield name
    finally:
        # KUBELOOP_KEEP_CLUSTER keeps the node, not the namespaces: a kept module's pods would hold the
        # 2-core node's CPU requests and leave the next module's pods Pending.
        if not (keep or os.environ.get("KUBELOOP_KEEP_NAMESPACES")):
            k.run("delete", "namespace", name, "--wait=false", check=False)


def service_port(service: dict[str, Any], port: str | int | None = None) -> dict[str, Any]:
    """The Service's port named or numbered `port` (None: its first)."""
    ports: list[dict[str, Any]] = service["spec"]["ports"]
    chosen = next((p for p in ports if port in (None, p.get("name"), p["port"])), None)
    meta = service["metadata"]
    assert chosen is not None, f"Service {meta.get('namespace')}/{meta['name']} has no port {port}: {ports}"
    return chosen
