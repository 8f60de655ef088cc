"""kubectl port-forward from this host to a Service of a cluster that is not this machine's node."""

from __future__ import annotations

import pytest

from tests.e2e.forward import forwarded_port

pytestmark = pytest.mark.unit


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
