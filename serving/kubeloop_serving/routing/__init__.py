"""Request routing in the stable server: exact canary split, A/B, shadow (kubeloop.contracts.routing)."""

from kubeloop_serving.routing.router import Router

__all__ = ["Router"]
