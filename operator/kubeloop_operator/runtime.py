"""What the handlers share at run time: the settings and the API client, set once at startup."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import kopf
from pydantic import BaseModel, ValidationError

from kubeloop_operator.kube import Kube
from kubeloop_operator.settings import OperatorSettings

SpecT = TypeVar("SpecT", bound=BaseModel)


@dataclass
class Runtime:
    settings: OperatorSettings = field(default_factory=OperatorSettings)
    kube: Kube | None = None
    service_monitors: bool = False

    def client(self) -> Kube:
        if self.kube is None:
            self.kube = Kube(self.settings.field_manager)
        return self.kube


RUNTIME = Runtime()


def parse_spec(model: type[SpecT], spec: Any) -> SpecT:
    """The typed spec, or a permanent error naming each bad field (the schema should have caught it)."""
    try:
        return model.model_validate(dict(spec))
    except ValidationError as error:
        problems = "; ".join(f"spec.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise kopf.PermanentError(f"invalid spec: {problems}") from error


# Every handler states its retries, backoff and timeout; these are the shared values.
RETRY = {"retries": 20, "backoff": 5, "timeout": 600}
