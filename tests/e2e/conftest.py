"""The e2e tier: kubeloop installed with Helm on a real node, every workload a real container."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.platform import ROOT, Platform, namespace, wait_for_e2e_deps

PLATFORM_LOG = ROOT / ".run/e2e/platform.log"


@dataclass
class _Deps:
    """Whether the node's dependencies were waited for, and what that raised (the platform fixture
    raises it in a test)."""

    waited: bool = False
    failed: Exception | None = None


_deps = _Deps()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Before the first e2e test, outside its timeout (the outermost wrapper, around pytest-timeout's):
    wait for the node's images and binaries, which `make test` builds in the background while the
    other tiers run; on a cold machine that build can outlast the other tiers by many minutes."""
    if not _deps.waited and item.get_closest_marker("e2e"):
        _deps.waited = True
        PLATFORM_LOG.parent.mkdir(parents=True, exist_ok=True)
        try:
            wait_for_e2e_deps(PLATFORM_LOG)
        except Exception as error:  # raised by the platform fixture, so the test errors and says why
            _deps.failed = error
    yield


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    if _deps.failed is not None:
        raise _deps.failed
    up = Platform.up(PLATFORM_LOG)
    yield up
    if not os.environ.get("KUBELOOP_KEEP_CLUSTER"):
        subprocess.run([ROOT / "hack/platform.sh", "down"], check=False, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def e2e_namespace(platform: Platform) -> Iterator[str]:
    with namespace(platform, f"kl-e2e-{uuid.uuid4().hex[:6]}") as name:
        yield name
