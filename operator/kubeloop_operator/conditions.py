"""metav1.Condition bookkeeping: pure functions over plain dicts as stored in status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Conditions = list[dict[str, Any]]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Conditions,
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    generation: int,
    timestamp: str | None = None,
) -> Conditions:
    """A new list with `type_` set; lastTransitionTime moves only when the status itself changes."""
    value = "Unknown" if status is None else ("True" if status else "False")
    previous = next((c for c in conditions if c.get("type") == type_), None)
    changed = previous is None or previous.get("status") != value
    condition = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": (timestamp or now()) if changed else previous["lastTransitionTime"],  # type: ignore[index]
    }
    return [c for c in conditions if c.get("type") != type_] + [condition]


def condition_status(conditions: Conditions, type_: str) -> str | None:
    return next((c.get("status") for c in conditions if c.get("type") == type_), None)


def same_conditions(a: Conditions, b: Conditions) -> bool:
    """Equal ignoring order: a status patch that changes nothing is not sent."""
    key = lambda c: c.get("type", "")  # noqa: E731
    return sorted(a, key=key) == sorted(b, key=key)


def observed_generation(current: dict[str, Any], generation: int, reconciled: bool) -> int:
    """The generation a status speaks for. Only a reconcile, which applied the children of `generation`
    (and resolved its models), may advance it; a refresh from a child's event keeps the one before, so
    the state of the old children never passes for the new spec (0: nothing reconciled yet)."""
    return generation if reconciled else int(current.get("observedGeneration") or 0)
