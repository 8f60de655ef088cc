"""kubeloop drift engine: compare a current window (data files or the payload log) with a
reference dataset, feature by feature, and judge dataset drift.

``kubeloop drift check|profile`` is :func:`kubeloop_drift.cli.main`; the pieces below are its
public Python API.
"""

from kubeloop_drift.check import CurrentData, obtain_profile, run_check
from kubeloop_drift.errors import (
    DriftError,
    EmptyInputError,
    OutputError,
    SchemaMismatchError,
    UnreadableInputError,
    UsageError,
)
from kubeloop_drift.profile import ProfileSettings, ReferenceProfile
from kubeloop_drift.result import DriftResult
from kubeloop_drift.selection import DEFAULT_THRESHOLDS, default_test, is_drifted

__all__ = [
    "DEFAULT_THRESHOLDS",
    "CurrentData",
    "DriftError",
    "DriftResult",
    "EmptyInputError",
    "OutputError",
    "ProfileSettings",
    "ReferenceProfile",
    "SchemaMismatchError",
    "UnreadableInputError",
    "UsageError",
    "default_test",
    "is_drifted",
    "obtain_profile",
    "run_check",
]
