"""ModelDeployment status: what the servers serve, each track's state, and the canary's rollout."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from kubeloop.api.common import ApiModel, Condition, conditions_field


class ResolvedModel(ApiModel):
    uri: str
    version: str | None = None


class TrackStatus(ApiModel):
    """A shadow's or an A/B arm's track: what it serves, whether it is ready, what it gets now."""

    name: str = Field(description="The track: shadow, or the A/B variant's name.")
    model: ResolvedModel | None = Field(None, description="Unset for the control arm (see status.model).")
    ready_replicas: int = 0
    routed: bool = Field(False, description="The stable servers send it requests now (a ready replica).")
    percent: int = Field(
        0,
        description="Percent of requests it gets now (mirrored, for the shadow); a variant not ready "
        "yet gets 0 and its weight goes to the control arm.",
    )
    message: str = ""


RolloutPhase = Literal[
    "Idle", "Progressing", "Paused", "Inconclusive", "Promoting", "Promoted", "RolledBack", "Aborted"
]
TERMINAL_PHASES = ("Promoted", "RolledBack", "Aborted")


class CheckResult(ApiModel):
    """One check's last value; value unset: not measurable in the window (then passed is unset too)."""

    name: str
    value: float | None = None
    threshold: float
    passed: bool | None = None


class RolloutStatus(ApiModel):
    """Where the canary's progressive delivery stands (the operator's record of its steps)."""

    phase: RolloutPhase = "Idle"
    canary_uri: str | None = Field(None, description="The canary model this rollout is about (its identity).")
    canary_version: str | None = None
    weight: int = Field(0, description="Percent of requests the stable servers forward to the canary now.")
    step: int = Field(0, description="1-based index into analysis.steps; 0: not started.")
    step_started_at: datetime | None = Field(None, description="When the step's weight was written.")
    window_start: datetime | None = Field(None, description="Start of the window being analysed.")
    analyzed_at: datetime | None = None
    weight_zero_since: datetime | None = Field(
        None, description="When the weight went to 0 at the end; the canary is kept until routes propagate."
    )
    held_weight: int | None = Field(
        None, description="The weight a pause holds; the routes get it while the canary has a ready replica."
    )
    failures: int = 0
    checks: list[CheckResult] = Field(default_factory=list)
    message: str = ""
    alias_moved: bool | None = Field(None, description="Promotion moved the registry alias stable follows.")


class PromotedModel(ApiModel):
    """A promoted canary that stable serves in place of spec.model (which named a fixed version):
    kept while spec.model.uri is still `replaces`."""

    uri: str
    version: str | None = None
    sha256: str | None = None
    replaces: str


class ModelDeploymentStatus(ApiModel):
    observed_generation: int | None = None
    replicas: int = 0
    ready_replicas: int = 0
    url: str | None = None
    model: ResolvedModel | None = None
    canary_model: ResolvedModel | None = None
    rollout: RolloutStatus | None = None
    promoted_model: PromotedModel | None = None
    shadow: TrackStatus | None = None
    ab_test: list[TrackStatus] | None = Field(None, description="Every A/B arm, the control arm first.")
    conditions: list[Condition] = conditions_field()
