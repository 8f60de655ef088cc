"""Tiers are markers: unit (no cluster), cluster (real kube-apiserver), e2e (real kubelet)."""

pytest_plugins = ["tests.fixtures.cluster"]
