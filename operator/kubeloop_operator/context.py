"""What every reconcile works with: settings, the API client, events, metrics, small caches.

One Context is made at startup and kept in kopf's memo (handlers get it from there); tests build
their own around an in-memory API server.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from kubeloop.api.deployment_status import ResolvedModel
from kubeloop_operator.conditions import now
from kubeloop_operator.kube import Kube, Obj
from kubeloop_operator.metrics import ObjectSeries
from kubeloop_operator.progress import ProgressReader, read_progress
from kubeloop_operator.prometheus import Prometheus
from kubeloop_operator.settings import OperatorSettings

EventPoster = Callable[[Obj, str, str, str], None]  # (object, "Normal"|"Warning", reason, message)
Key = tuple[str, str, str]  # (kind, namespace, name)


def post_with_kopf(obj: Obj, type_: str, reason: str, message: str) -> None:
    import kopf

    body = kopf.Body(cast(kopf.RawBody, obj))
    (kopf.warn if type_ == "Warning" else kopf.info)(body, reason=reason, message=message)


def digest(manifests: list[Obj]) -> str:
    return hashlib.sha256(json.dumps(manifests, sort_keys=True).encode()).hexdigest()


@dataclass
class Context:
    settings: OperatorSettings
    kube: Kube
    service_monitors: bool = False
    post: EventPoster = post_with_kopf
    series: ObjectSeries = field(default_factory=ObjectSeries)
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], datetime] = now  # times written to status (rollout steps)
    prometheus: Prometheus | None = None
    read_progress: ProgressReader = read_progress  # a TrainingJob's progress, from MLflow
    _applied: dict[Key, tuple[str, dict[str, str], float]] = field(default_factory=dict)
    _resolved: dict[tuple[str, str], tuple[ResolvedModel, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, settings: OperatorSettings) -> Context:
        prometheus = Prometheus(settings.prometheus_url) if settings.prometheus_url else None
        return cls(settings=settings, kube=Kube(settings.field_manager), prometheus=prometheus)

    def applied_recently(self, key: Key, manifests: list[Obj], observed: dict[str, str]) -> bool:
        """These exact children were applied for `key` within resync_seconds and the observed
        children still look as applying them left them (`observed`: a digest per child; none
        deleted, none edited since): applying them again would change nothing."""
        with self._lock:
            seen = self._applied.get(key)
        return (
            seen is not None
            and seen[0] == digest(manifests)
            and seen[1] == observed
            and self.clock() - seen[2] < self.settings.resync_seconds
        )

    def remember_applied(
        self, key: Key, manifests: list[Obj] | None, observed: dict[str, str] | None = None
    ) -> None:
        with self._lock:
            if manifests is None:
                self._applied.pop(key, None)
            else:
                self._applied[key] = (digest(manifests), observed or {}, self.clock())

    def cached_model(self, uri: str, tracking: str, max_age: float) -> ResolvedModel | None:
        with self._lock:
            found = self._resolved.get((uri, tracking))
        return found[0] if found and (max_age < 0 or self.clock() - found[1] < max_age) else None

    def remember_model(self, uri: str, tracking: str, model: ResolvedModel) -> None:
        with self._lock:
            self._resolved[(uri, tracking)] = (model, self.clock())

    def forget(self, key: Key) -> None:
        """The object is gone: its metric series and cached state go too."""
        self.remember_applied(key, None)
        self.series.forget(key)


def context_of(memo: Any) -> Context:
    """The Context the startup handler put into kopf's memo (every object's memo copies it)."""
    context = memo["context"]
    assert isinstance(context, Context)
    return context
