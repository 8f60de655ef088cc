from __future__ import annotations

import pytest

from kubeloop_operator.render.common import Owner
from kubeloop_operator.settings import OperatorSettings
from tests.unit.operator.world import World


@pytest.fixture
def settings() -> OperatorSettings:
    return OperatorSettings()


@pytest.fixture
def world() -> World:
    """A fresh fake API server and operator Context for each test (tests/unit/operator/world.py)."""
    return World()


def owner_of(kind: str, name: str = "demo", generation: int = 1) -> Owner:
    return Owner(kind, "kubeloop.io/v1alpha1", name, "team-a", "uid-123", generation)
