"""metav1.Condition bookkeeping over the typed Condition model."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from kubeloop.api.common import Condition

_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def safe_reason(reason: str, fallback: str) -> str:
    """Reasons from elsewhere (a trainer, the kubelet) must still match the schema's pattern."""
    return reason if _REASON.match(reason) else fallback


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    generation: int,
    at: datetime | None = None,
) -> list[Condition]:
    """A new list with `type_` set; lastTransitionTime moves only when the status itself changes."""
    value = "Unknown" if status is None else ("True" if status else "False")
    previous = find(conditions, type_)
    changed = previous is None or previous.status != value
    condition = Condition(
        type=type_,
        status=value,
        reason=safe_reason(reason, "Unknown"),
        message=message[:32768],
        observed_generation=generation,
        last_transition_time=(at or now()) if changed or previous is None else previous.last_transition_time,
    )
    return [c for c in conditions if c.type != type_] + [condition]


def find(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def status_of(conditions: list[Condition], type_: str) -> str | None:
    found = find(conditions, type_)
    return found.status if found else None
