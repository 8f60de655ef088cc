"""The ``kubeloop drift check`` command line: built by the operator, parsed by kubeloop_drift.cli."""

from __future__ import annotations

import json
from dataclasses import dataclass

from kubeloop.api.drift import DEFAULT_WINDOW, DriftCheckConfig

COMMAND = ["kubeloop", "drift", "check"]
TERMINATION_LOG = "/dev/termination-log"


__all__ = ["COMMAND", "DEFAULT_WINDOW", "TERMINATION_LOG", "DriftCheckArgs"]


@dataclass(frozen=True)
class DriftCheckArgs:
    """One check of a model's payload log against a reference."""

    reference: str
    payload_log: str
    model: str
    config: DriftCheckConfig
    window_duration: str | None = None
    last_rows: int | None = None
    report_uri: str | None = None
    profile_cache: str | None = None
    termination_log: str = TERMINATION_LOG

    def argv(self) -> list[str]:
        """The arguments after ``kubeloop drift check``."""
        args = ["--reference", self.reference, "--payload-log", self.payload_log, "--model", self.model]
        if self.last_rows is not None:
            args += ["--last-rows", str(self.last_rows)]
        else:
            args += ["--window-duration", self.window_duration or DEFAULT_WINDOW]
        args += ["--config", json.dumps(self.config.wire(), separators=(",", ":"), sort_keys=True)]
        if self.report_uri is not None:
            args += ["--report-uri", self.report_uri]
        if self.profile_cache is not None:
            args += ["--profile-cache", self.profile_cache]
        return [*args, "--termination-log", self.termination_log]

    def command(self) -> list[str]:
        return [*COMMAND, *self.argv()]
