"""The e2e tier: kubeloop installed with Helm on a real node, every workload a real container."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.platform import ROOT, Platform, namespace


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    log = ROOT / ".run/e2e/platform.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    up = Platform.up(log)
    yield up
    if not os.environ.get("KUBELOOP_KEEP_CLUSTER"):
        import subprocess

        subprocess.run([ROOT / "hack/platform.sh", "down"], check=False, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def e2e_namespace(platform: Platform) -> Iterator[str]:
    with namespace(platform, f"kl-e2e-{uuid.uuid4().hex[:6]}") as name:
        yield name
