"""What every reconcile trigger tells kopf: retries, backoff and timeout, and a deletion filter."""

from __future__ import annotations

from typing import Any, TypedDict


class Retry(TypedDict):
    retries: int
    backoff: float
    timeout: float


RETRY = Retry(retries=20, backoff=5, timeout=600)


def deleted(event: Any, **_: Any) -> bool:
    """For on.event: only the deletion of the object (its metric series must go)."""
    return bool(event.get("type") == "DELETED")
