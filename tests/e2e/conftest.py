"""The e2e tier: kubeloop installed with Helm on a real node, every workload a real container."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.platform import ROOT, Platform, namespace, wait_for_e2e_deps

PLATFORM_LOG = ROOT / ".run/e2e/platform.log"
#: What waiting for the node's dependencies raised, for the platform fixture to raise in a test.
_deps: dict[str, Exception | None] = {}


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Before the first e2e test, outside its timeout (the outermost wrapper, around pytest-timeout's):
    wait for the node's images and binaries, which `make test` builds in the background while the
    other tiers run; on a cold machine that build can outlast the other tiers by many minutes."""
    if "wait" not in _deps and item.get_closest_marker("e2e"):
        PLATFORM_LOG.parent.mkdir(parents=True, exist_ok=True)
        try:
            wait_for_e2e_deps(PLATFORM_LOG)
            _deps["wait"] = None
        except Exception as error:  # raised by the platform fixture, so the test errors and says why
            _deps["wait"] = error
    yield


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    failed = _deps.get("wait")
    if failed is not None:
        raise failed
    up = Platform.up(PLATFORM_LOG)
    yield up
    if not os.environ.get("KUBELOOP_KEEP_CLUSTER"):
        import subprocess

        subprocess.run([ROOT / "hack/platform.sh", "down"], check=False, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def e2e_namespace(platform: Platform) -> Iterator[str]:
    with namespace(platform, f"kl-e2e-{uuid.uuid4().hex[:6]}") as name:
        yield name
