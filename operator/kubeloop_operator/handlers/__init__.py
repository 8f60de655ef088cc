"""Importing this package registers every kopf handler: each trigger is one call to its kind's
reconcile (kubeloop_operator.reconcile)."""

from kubeloop_operator.handlers import drift, serving, startup, training

__all__ = ["drift", "serving", "startup", "training"]
