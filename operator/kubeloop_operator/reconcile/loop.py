"""The shape every kind's reconcile shares (kubebuilder's, in kopf)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import kopf
from pydantic import BaseModel, ValidationError

from kubeloop.api.common import ApiModel, Condition
from kubeloop_operator import metrics, reasons
from kubeloop_operator.conditions import set_condition
from kubeloop_operator.context import Context, Key
from kubeloop_operator.kube import ConflictError, Obj

CONFLICT_RETRIES = 10
SpecT = TypeVar("SpecT", bound=BaseModel)
StatusT = TypeVar("StatusT", bound=ApiModel)


class SpecError(Exception):
    """The spec does not parse (the schema should have refused it): permanent until edited."""


@dataclass
class Outcome(Generic[StatusT]):
    """What one pass decided: the status to write, what to do once it is written (events,
    metrics), and the error kopf should see (retry later, or give up on this generation)."""

    status: StatusT
    effects: list[Callable[[], None]] = field(default_factory=list)
    error: Exception | None = None


Step = Callable[[Context, Obj], Outcome[StatusT]]


def key_of(obj: Obj) -> Key:
    return obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"]


def parse_spec(model: type[SpecT], obj: Obj) -> SpecT:
    """The typed spec, or SpecError naming each bad field."""
    try:
        return model.model_validate(dict(obj.get("spec") or {}))
    except ValidationError as error:
        problems = "; ".join(f"spec.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise SpecError(f"invalid spec: {problems}") from error


def parse_status(model: type[StatusT], obj: Obj) -> StatusT:
    """The status as last written; a status that no longer parses starts afresh (it is derived)."""
    try:
        return model.model_validate(obj.get("status") or {})
    except ValidationError:
        return model()


def invalid(
    status: StatusT, conditions: list[Condition], summary: str, generation: int, error: SpecError
) -> Outcome[StatusT]:
    """A False summary condition naming the bad fields, and a permanent error for kopf."""
    conditions = set_condition(conditions, summary, False, reasons.INVALID_SPEC, str(error), generation)
    updated = status.model_copy(update={"conditions": conditions, "observed_generation": generation})
    return Outcome(updated, error=kopf.PermanentError(str(error)))


def reconcile(
    ctx: Context, kind: str, namespace: str, name: str, step: Step[StatusT], read: Obj | None = None
) -> None:
    """Run `step` on a fresh read until its status lands on the version it read (409: again).
    `read`: the object as the trigger just read it (kopf's watch), saving the first GET."""
    with metrics.RECONCILE_SECONDS.labels(kind).time():
        for _ in range(CONFLICT_RETRIES):
            obj, read = read or ctx.kube.get(kind, namespace, name), None
            if obj is None:
                ctx.forget((kind, namespace, name))
                return
            if obj["metadata"].get("deletionTimestamp"):
                return
            outcome = step(ctx, obj)
            status = outcome.status.wire()
            try:
                if status != (obj.get("status") or {}):
                    ctx.kube.replace_status(obj, status)
            except ConflictError:
                continue
            for effect in outcome.effects:
                effect()
            result = "ok" if outcome.error is None else type(outcome.error).__name__
            metrics.RECONCILES.labels(kind, result).inc()
            if outcome.error is not None:
                raise outcome.error
            return
    raise kopf.TemporaryError(f"status of {kind} {namespace}/{name} kept conflicting", delay=1)
