"""manifests/install/ is the chart rendered by hack/render-install.sh: it fails when they drift apart."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.chart.helm import ROOT

pytestmark = pytest.mark.unit
INSTALL = ROOT / "manifests/install"


def test_install_manifests_are_fresh(tmp_path: Path) -> None:
    subprocess.run([ROOT / "hack/render-install.sh", tmp_path], check=True, capture_output=True, timeout=300)
    rendered = sorted(p.name for p in tmp_path.iterdir())
    assert rendered == sorted(p.name for p in INSTALL.iterdir()), "files added or removed"
    for name in rendered:
        assert (tmp_path / name).read_text() == (INSTALL / name).read_text(), (
            f"manifests/install/{name} is stale: run hack/render-install.sh"
        )


def test_install_manifests_hold_namespace_crds_and_operator() -> None:
    docs = [d for d in yaml.safe_load_all((INSTALL / "kubeloop.yaml").read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds[0] == "Namespace", "the namespace first, so everything after it can be created"
    assert docs[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert kinds.count("CustomResourceDefinition") == 3
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service"} <= set(kinds)
    namespaced = [d for d in docs if d["kind"] not in ("Namespace", "CustomResourceDefinition")]
    namespaced = [d for d in namespaced if not d["kind"].startswith("Cluster")]
    assert {d["metadata"]["namespace"] for d in namespaced} == {"kubeloop-system"}
