"""The routing table in effect, compiled from the routes file and re-read when the file changes.

A ConfigMap volume publishes a new version by swapping the ``..data`` symlink to a fresh
directory, so ``routes.json`` (a symlink through ``..data``) resolves to a new inode: the file's
identity is taken from ``os.stat`` of the path (following links), never from the link itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from kubeloop.contracts.routing import Routes, Variant
from kubeloop_serving.routing.split import SmoothSplit, bucket_table

log = logging.getLogger(__name__)
FileIdentity = tuple[int, int, int, int]
MISSING: FileIdentity = (-1, -1, -1, -1)


@dataclass
class RouteTable:
    """A compiled routing table; its counters live as long as the table does."""

    routes: Routes
    canary: SmoothSplit[bool] | None = None
    shadow: SmoothSplit[bool] | None = None
    ab_counter: SmoothSplit[Variant] | None = None
    ab_buckets: list[Variant] | None = None
    ab_header: bytes = b""
    ab_local: str = ""
    """The variant this server is (its track for the requests it answers during an A/B test)."""

    @property
    def idle(self) -> bool:
        """Nothing is split off or mirrored: every request is answered here, under this server's track."""
        return self.canary is None and self.shadow is None and self.ab_counter is None


def compile_routes(routes: Routes) -> RouteTable:
    """Counters for each split with something to split."""
    table = RouteTable(routes)
    if routes.canary is not None and routes.canary.weight_percent > 0:
        weight = routes.canary.weight_percent
        table.canary = SmoothSplit([(True, weight), (False, 100 - weight)])
    if routes.shadow is not None and routes.shadow.percent > 0:
        percent = routes.shadow.percent
        table.shadow = SmoothSplit([(True, percent), (False, 100 - percent)])
    if routes.ab is not None:
        arms = [(variant, variant.weight_percent) for variant in routes.ab.variants]
        table.ab_counter = SmoothSplit(arms)
        table.ab_buckets = bucket_table(arms)
        table.ab_header = routes.ab.header.lower().encode()
        table.ab_local = next(variant.name for variant in routes.ab.variants if variant.url is None)
    return table


def identity(path: str) -> FileIdentity | None:
    """What changes when the file (or the target of its symlinks) is replaced or rewritten."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)


class RoutesFile:
    """Holds the last good table of ``path``; ``check`` re-reads it when its identity changed."""

    def __init__(
        self,
        path: str,
        on_table: Callable[[RouteTable], None],
        on_error: Callable[[], None],
        poll_seconds: float = 1.0,
    ) -> None:
        self.path = path
        self.table = RouteTable(Routes())
        self._on_table = on_table
        self._on_error = on_error
        self._poll_seconds = poll_seconds
        self._seen: FileIdentity | None = None
        self._applied = False

    def check(self) -> None:
        """Reload when the file changed; an unreadable or invalid one is logged, counted and ignored."""
        seen = identity(self.path) or MISSING
        if seen == self._seen:
            return
        self._seen = seen
        if seen == MISSING:
            log.error("routes file %s is missing; keeping the routes in effect", self.path)
            self._on_error()
            return
        try:
            with open(self.path, "rb") as source:
                routes = Routes.model_validate_json(source.read())
        except (OSError, ValidationError) as error:
            log.error("routes file %s is invalid, keeping the routes in effect: %s", self.path, error)
            self._on_error()
            return
        if self._applied and routes == self.table.routes:
            return  # the same table published again: keep its counters where they are
        self.table = compile_routes(routes)
        self._applied = True
        log.info("routes in effect: %s", routes.to_json())
        self._on_table(self.table)

    async def watch(self) -> None:
        """Check every ``poll_seconds`` until cancelled."""
        while True:
            await asyncio.sleep(self._poll_seconds)
            self.check()
