"""The chart's prometheus-adapter rule, run by the real adapter (v0.12.0, built from the Go module proxy)
against the real API server, reading a real Prometheus that scrapes a live `kubeloop serve` under load:
the custom metrics API answers the in-flight metric per pod, as the HPA will ask for it.

The adapter runs on this host (kwok runs no containers), so it is asked directly, not through the API
server's aggregation layer; the pod it reports on is a kwok pod whose name the scrape labels carry, as
the chart's Prometheus labels a real server pod's series.
"""

from __future__ import annotations

import shutil
import signal
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kubeloop.contracts.autoscaling import pods_metric_path
from tests.cluster.live_server import Load, Server
from tests.fixtures.cluster import Cluster, wait_for
from tests.fixtures.ports import free_port
from tests.fixtures.prometheus import Prometheus
from tests.unit.chart.helm import ROOT, render

pytestmark = pytest.mark.cluster
POD = "srv-0"


def adapter_binary() -> Path:
    """hack/build-addons.sh prometheus-adapter: cached by version (cold ~3 min)."""
    out = subprocess.run(
        [ROOT / "hack/build-addons.sh", "prometheus-adapter"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.split()[1])


def chart_rule_config() -> str:
    """The adapter's configuration as the chart renders it."""
    values = {"prometheus": {"enabled": True}, "prometheusAdapter": {"enabled": True}}
    (config,) = [m for m in render(values) if m["kind"] == "ConfigMap" and "config.yaml" in m["data"]]
    text: str = config["data"]["config.yaml"]
    return text


@dataclass
class Adapter:
    """The adapter on a loopback port, with the API server's kubeconfig for listing, authn and authz."""

    binary: Path
    directory: Path
    kubeconfig: Path
    prometheus_url: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Adapter:
        (self.directory / "config.yaml").write_text(chart_rule_config())
        log = (self.directory / "adapter.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(self.binary),
                f"--config={self.directory / 'config.yaml'}",
                f"--prometheus-url={self.prometheus_url}",
                "--metrics-relist-interval=2s",
                f"--secure-port={self.port}",
                "--bind-address=127.0.0.1",
                f"--cert-dir={self.directory / 'cert'}",
                *(
                    f"--{k}-kubeconfig={self.kubeconfig}"
                    for k in ("lister", "authentication", "authorization")
                ),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def log_tail(self) -> str:
        path = self.directory / "adapter.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-30:]) if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)


def client_tls(kubeconfig: Path) -> ssl.SSLContext:
    """TLS with the kubeconfig user's client certificate (the adapter authenticates it against the API
    server's client CA, and asks the API server whether it may read the metric); the adapter's own
    certificate is self-signed, as in the chart (the APIService skips verifying it). hack/cluster.sh
    writes the kubeconfig with the certificate and key as files."""
    user = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    # relative paths are relative to the kubeconfig, as every Kubernetes client reads them
    context.load_cert_chain(
        kubeconfig.parent / user["client-certificate"], kubeconfig.parent / user["client-key"]
    )
    return context


@pytest.fixture
def pod_namespace(crds: Cluster) -> Iterator[str]:
    name = f"kl-test-adapter-{free_port()}"
    crds.kubectl.run("create", "namespace", name)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD, "labels": {"app": "srv"}},
        "spec": {"containers": [{"name": "server", "image": "kubeloop/kubeloop:test"}]},
    }
    crds.kubectl.apply(pod, name)
    yield name
    crds.kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def test_the_adapter_serves_the_in_flight_metric_per_pod(
    crds: Cluster, pod_namespace: str, tmp_path: Path
) -> None:
    if shutil.which("prometheus") is None:
        pytest.skip("Debian's prometheus is not installed: run hack/install-system.sh")
    ns = pod_namespace
    server = Server(tmp_path).start()
    labels = {"namespace": ns, "pod": POD}
    prometheus = Prometheus(
        tmp_path, {"servers": {"static_configs": [{"targets": [server.url[7:]], "labels": labels}]}}
    )
    adapter = Adapter(adapter_binary(), tmp_path, crds.kubeconfig, "")
    try:
        prometheus.start()
        adapter.prometheus_url = prometheus.url
        adapter.start()
        tls = client_tls(crds.kubeconfig)
        url = f"https://127.0.0.1:{adapter.port}{pods_metric_path(ns)}"

        def values() -> dict[str, float] | None:
            assert adapter.process is not None and adapter.process.poll() is None, adapter.log_tail()
            answer = httpx.get(url, verify=tls, timeout=5)
            if answer.status_code != 200:
                return None
            items: list[dict[str, Any]] = answer.json()["items"]
            return {i["describedObject"]["name"]: quantity(i["value"]) for i in items}

        idle = wait_for(values, 90, interval=1, what="the adapter answering for the pod")
        assert idle == {POD: 0.0}, idle
        with Load(server, workers=6):
            busy = wait_for(lambda: busy_values(values()), 60, interval=1, what="requests in flight")
        assert set(busy) == {POD} and busy[POD] > 0
    finally:
        adapter.stop()
        prometheus.stop()
        server.stop()


def busy_values(values: dict[str, float] | None) -> dict[str, float] | None:
    return values if values and values.get(POD, 0) > 0 else None


def quantity(text: str) -> float:
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
