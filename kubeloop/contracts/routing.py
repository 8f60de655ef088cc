"""Where a server sends each request besides itself: written by the operator, read by ``kubeloop serve``.

The operator renders a ConfigMap (key ``routes.json``) mounted into the stable track's pods at
``ROUTES_DIR``; the server reads ``ROUTES_FILE`` at start and again whenever it changes, so a new
canary weight needs no restart (the kubelet refreshes a mounted ConfigMap within its sync period).
A request that a server forwarded carries ``FORWARDED_HEADER`` and is never forwarded again; every
answer names the track that computed it in ``TRACK_HEADER``: the server's ``TRACK`` setting, or the
name of the A/B variant (a ``TRACK_PATTERN`` name) it served as.

Splits are exact per server process: a smooth weighted counter picks the canary (or an A/B
variant, for requests without the sticky header) for exactly ``weight_percent`` of every 100
requests, whatever the connections; the shadow's ``percent`` counts requests the server answered itself.

REST requests go to a route's ``url``, OIP gRPC ``ModelInfer`` calls to its ``grpc_target`` (the same
counters pick for both protocols); a route without ``grpc_target`` gets REST requests only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ROUTES_DIR = "/etc/kubeloop/routes"
ROUTES_KEY = "routes.json"
ROUTES_FILE = f"{ROUTES_DIR}/{ROUTES_KEY}"
FORWARDED_HEADER = "x-kubeloop-forwarded"
TRACK_HEADER = "x-kubeloop-track"
Track = Literal["stable", "canary", "shadow", "variant"]
TRACK_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A track name: stable, canary, shadow or an A/B variant's name (a DNS label, metrics label value)."""

GRPC_TARGET = "host:port of the track's OIP gRPC port, e.g. m-canary:8081; unset: gRPC calls are served here"


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Canary(_Contract):
    """Send ``weight_percent`` of requests to the canary's Service and return its answer."""

    url: str = Field(min_length=1, description="Base URL of the canary Service, e.g. http://m-canary:8080")
    weight_percent: int = Field(ge=0, le=100)
    grpc_target: str | None = Field(None, min_length=1, description=GRPC_TARGET)


class Shadow(_Contract):
    """Also send ``percent`` of requests to the shadow; its answers are compared, never returned."""

    url: str = Field(min_length=1)
    percent: int = Field(ge=0, le=100)
    grpc_target: str | None = Field(None, min_length=1, description=GRPC_TARGET)
    queue_size: int = Field(1000, ge=1, description="Copies waiting to be sent; beyond it they are dropped.")


class Variant(_Contract):
    """One arm of an A/B test; ``url`` None means this server itself."""

    name: str = Field(min_length=1, max_length=63, pattern=TRACK_PATTERN)
    url: str | None = None
    weight_percent: int = Field(ge=0, le=100)
    grpc_target: str | None = Field(None, min_length=1, description=GRPC_TARGET)


class ABTest(_Contract):
    """A fixed split, sticky per value of ``header`` (blake2b of the value); no header: by the counter."""

    header: str = Field(min_length=1, pattern=r"^[A-Za-z0-9-]+$")
    variants: list[Variant] = Field(min_length=2)

    @model_validator(mode="after")
    def _weights_sum_to_100(self) -> ABTest:
        if sum(v.weight_percent for v in self.variants) != 100:
            raise ValueError("variants' weight_percent must sum to 100")
        if sum(v.url is None for v in self.variants) != 1:
            raise ValueError("exactly one variant must be this server (url unset)")
        if any(v.url is None and v.grpc_target is not None for v in self.variants):
            raise ValueError("the variant that is this server (url unset) has no grpc_target")
        return self


class Routes(_Contract):
    """The whole routing table of one ModelDeployment's stable track (canary and A/B exclude each other)."""

    generation: int = Field(0, ge=0, description="The ModelDeployment generation it was rendered from.")
    canary: Canary | None = None
    shadow: Shadow | None = None
    ab: ABTest | None = None

    @model_validator(mode="after")
    def _one_split(self) -> Routes:
        if self.canary is not None and self.ab is not None:
            raise ValueError("a canary and an A/B test cannot split the same traffic")
        return self

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)
