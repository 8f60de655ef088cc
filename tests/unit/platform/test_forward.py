"""kubectl port-forward from this host to a Service of a cluster that is not this machine's node."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from tests.e2e.forward import PortForward, forwarded_port
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("line", "port"),
    [
        ("Forwarding from 127.0.0.1:43567 -> 8080\n", 43567),  # kubectl's line, --address 127.0.0.1
        ("Forwarding from 127.0.0.1:5000 -> 5000", 5000),
        ("Forwarding from [::1]:43567 -> 8080\n", None),  # the IPv6 twin of `--address localhost`
        ("Handling connection for 43567\n", None),
        ("error: unable to forward port because pod is not running. Current status=Pending\n", None),
        ("E1201 02:30:00.000000 1 portforward.go:413] an error occurred forwarding 43567 -> 8080\n", None),
    ],
)
def test_the_local_port_is_read_from_kubectls_forwarding_line(line: str, port: int | None) -> None:
    assert forwarded_port(line) == port


def kubectl_binary() -> Path:
    out = subprocess.run([ROOT / "hack/build-k8s.sh"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip()) / "kubectl"


def test_a_forward_that_cannot_start_says_why_and_leaves_nothing_running(tmp_path: Path) -> None:
    """A real kubectl against a cluster address nothing listens on: start() fails with kubectl's words."""
    config = tmp_path / "closed.kubeconfig"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    forward = PortForward(kubectl_binary(), config, "kubeloop-system", "s3", 8333)
    with pytest.raises(RuntimeError, match=r"port-forward kubeloop-system/s3:8333 did not start: .*refused"):
        forward.start(timeout=60)
    assert forward._process is not None and forward._process.poll() is not None
    assert not [t for t in threading.enumerate() if t.name.startswith("port-forward kubeloop-system/s3")]
