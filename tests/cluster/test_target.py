"""`make demo`'s cluster choice and port-forwards with a real kubectl against a real kube-apiserver (the
kwok cluster: its pods have no kubelet to forward to, so only the failures of a forward are checked)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

from tests.e2e.forward import PortForward
from tests.e2e.target import choose, kubectl_reaches
from tests.fixtures.cluster import Cluster
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.cluster


def closed_kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig whose server address nothing listens on."""
    config = tmp_path / "closed.kubeconfig"
    server = f"https://127.0.0.1:{free_port()}"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return config


def test_a_kubeconfig_that_reaches_a_cluster_is_chosen(cluster: Cluster, tmp_path: Path) -> None:
    kubectl = cluster.bin / "kubectl"
    assert kubectl_reaches(kubectl, str(cluster.kubeconfig))
    assert not kubectl_reaches(kubectl, str(closed_kubeconfig(tmp_path)))
    assert not kubectl_reaches(tmp_path / "no-kubectl", str(cluster.kubeconfig))

    def probe(value: str) -> bool:
        return kubectl_reaches(kubectl, value)

    env = {"KUBELET_WORKDIR": str(tmp_path / "node")}
    target = choose({**env, "KUBECONFIG": str(cluster.kubeconfig)}, tmp_path, probe)
    assert (target.mode, target.kubeconfig) == ("existing", str(cluster.kubeconfig))
    fallback = choose({**env, "KUBECONFIG": str(closed_kubeconfig(tmp_path))}, tmp_path, probe)
    assert fallback.mode == "local"
    assert "reaches no cluster" in fallback.reason


@pytest.mark.parametrize("reachable", [True, False], ids=["no-such-service", "no-cluster"])
def test_a_forward_that_cannot_start_says_why_and_leaves_nothing_running(
    cluster: Cluster, tmp_path: Path, reachable: bool
) -> None:
    config = cluster.kubeconfig if reachable else closed_kubeconfig(tmp_path)
    forward = PortForward(cluster.bin / "kubectl", config, "default", "no-such-service", 8333)
    why = r"services \"no-such-service\" not found" if reachable else "refused"
    with pytest.raises(
        RuntimeError, match=rf"port-forward default/no-such-service:8333 did not start: .*{why}"
    ):
        forward.start(timeout=60)
    assert forward._process is not None and forward._process.poll() is not None
    assert not [t for t in threading.enumerate() if t.name.startswith("port-forward default/no-such-service")]
