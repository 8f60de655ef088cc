"""Importing this package registers every kopf handler."""

from kubeloop_operator.handlers import drift, serving, startup, training

__all__ = ["drift", "serving", "startup", "training"]
