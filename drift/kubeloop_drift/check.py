"""A whole drift check: profile the reference (or reuse its stored profile), read the current
window, run the planned tests, and judge the dataset. The CLI is a thin layer over this."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from kubeloop.api.drift import DriftCheckConfig
from kubeloop_drift.engine import check_features
from kubeloop_drift.errors import EmptyInputError
from kubeloop_drift.ks_pvalue import prefetch_scipy_stats, uses_scipy_stats
from kubeloop_drift.payload_log import PayloadWindow, payload_window
from kubeloop_drift.performance.check import check_performance
from kubeloop_drift.profile import (
    ColumnProfile,
    ProfileSettings,
    ReferenceProfile,
    is_feature_column,
    profile_column,
    summary_line,
)
from kubeloop_drift.profile_store import load_profile, profile_uri_for, save_profile
from kubeloop_drift.progress import Progress
from kubeloop_drift.result import DriftResult, dataset_verdict
from kubeloop_drift.selection import current_kinds, plan_tests, selected_features
from kubeloop_drift.sources import (
    DataSource,
    one_line,
    read_schema,
    read_table,
    resolve_source,
    string_columns,
)


@dataclass
class CurrentData:
    """Where the current window comes from: a data URI, or a model's payload log."""

    uri: str | None = None
    payload_log: str | None = None
    model: str | None = None
    window_duration: str | None = None
    last_rows: int | None = None
    now: datetime | None = None


@dataclass
class ProfileOutcome:
    profile: ReferenceProfile
    uri: str
    cached: bool
    stored: bool
    notes: list[str] = field(default_factory=list)


def obtain_profile(
    reference_uri: str,
    profile_cache: str | None,
    progress: Progress,
    *,
    settings: ProfileSettings | None = None,
    rebuild: bool = False,
    workers: int = 1,
) -> ProfileOutcome:
    """The stored profile when it matches the reference, else a new one (stored best effort)."""
    settings = settings or ProfileSettings()
    with progress.stage("listed reference") as details:
        source = resolve_source(reference_uri)
        fingerprint = source.fingerprint()
        details.append(f"{len(source.files)} file(s)")
    uri = profile_uri_for(reference_uri, profile_cache)
    if not rebuild:
        with progress.stage("loaded profile") as details:
            try:
                stored = load_profile(uri)
            except ValueError as error:
                progress.note(f"ignoring profile {uri}: {error}")
                stored = None
            details.append("none stored" if stored is None else uri)
        if stored is not None and stored.fingerprint == fingerprint and stored.settings == settings:
            return ProfileOutcome(stored, uri, cached=True, stored=True)
        if stored is not None:
            progress.note(
                "the stored profile is stale (the reference or the settings changed): profiling again"
            )
    profile = build_profile(source, fingerprint, settings, progress, workers)
    with progress.stage("stored profile") as details:
        try:
            save_profile(profile, uri)
            details.append(uri)
            return ProfileOutcome(profile, uri, cached=False, stored=True)
        except Exception as error:  # any storage failure: the check goes on without a stored profile
            details.append(f"not stored: {one_line(error)}")
            return ProfileOutcome(
                profile, uri, cached=False, stored=False, notes=[f"profile not stored: {one_line(error)}"]
            )


def build_profile(
    source: DataSource, fingerprint: str, settings: ProfileSettings, progress: Progress, workers: int = 1
) -> ReferenceProfile:
    """Read every feature column of the reference once and profile it."""
    with progress.stage("read reference") as details:
        schema = read_schema(source)
        names = [name for name in schema.names if is_feature_column(name)]
        table = read_table(source, names, dictionary_columns=string_columns(schema, names))
        details.append(f"{table.num_rows:,} rows x {len(names)} features")
    if table.num_rows == 0:
        raise EmptyInputError(f"the reference {source.uri} has no rows")
    with progress.stage("profiled reference") as details:
        profiled = _map(lambda name: profile_column(name, table.column(name), settings), names, workers)
        profile = ReferenceProfile(
            reference_uri=source.uri,
            fingerprint=fingerprint,
            rows=table.num_rows,
            settings=settings,
            columns={
                name: found for name, found in zip(names, profiled, strict=True) if not isinstance(found, str)
            },
            unsupported={
                name: found for name, found in zip(names, profiled, strict=True) if isinstance(found, str)
            },
        )
        details.append(summary_line(profile))
    return profile


def _map(
    function: Callable[[str], ColumnProfile | str], names: list[str], workers: int
) -> list[ColumnProfile | str]:
    if workers <= 1:
        return [function(name) for name in names]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="profile") as pool:
        return list(pool.map(function, names))


def run_check(
    reference_uri: str,
    current: CurrentData,
    config: DriftCheckConfig,
    progress: Progress,
    *,
    profile_cache: str | None = None,
    workers: int = 1,
) -> DriftResult:
    """The full check, without writing anything but the profile."""
    obtained = obtain_profile(reference_uri, profile_cache, progress, workers=workers)
    profile = obtained.profile
    with progress.stage("planned tests") as details:
        schema, read, description, window = _current_reader(current)
        features, left_out = selected_features(profile, config, current_kinds(schema))
        plans = plan_tests(profile, config, features)
        details.append(f"{len(plans)} features")
    with progress.stage("read current") as details:
        table = read(features)
        if table.num_rows == 0:
            raise EmptyInputError(f"the current data {current.uri} has no rows")
        description["rows"] = table.num_rows
        details.append(f"{table.num_rows:,} rows x {len(features)} features")
    if any(
        plan.test == "ks" and uses_scipy_stats(profile.columns[plan.feature].count, table.num_rows)
        for plan in plans
    ):
        prefetch_scipy_stats()
    with progress.stage("checked features") as details:
        outcomes = check_features(profile, table, plans, workers)
        details.append(f"{sum(o.drifted for o in outcomes)} drifted")
    for name in left_out:
        progress.note(f"not checked: {name} ({left_out[name]})")
    performance = None
    if config.performance is not None:
        with progress.stage("measured performance") as details:
            now_ms = current.now.timestamp() * 1000 if current.now is not None else None
            performance = check_performance(window, config.performance, now_ms)
            details.append(f"{performance.labelled:,} labelled of {performance.matured:,} matured")
    return DriftResult(
        verdict=dataset_verdict(outcomes, config.drift_share),
        features=outcomes,
        reference={
            "uri": reference_uri,
            "rows": profile.rows,
            "profile": {
                "uri": obtained.uri,
                "cached": obtained.cached,
                "stored": obtained.stored,
                "fingerprint": profile.fingerprint,
            },
        },
        current=description,
        not_checked=left_out,
        timings_seconds=dict(progress.timings),
        performance=performance,
    )


def _current_reader(
    current: CurrentData,
) -> tuple[pa.Schema, Callable[[list[str]], pa.Table], dict[str, Any], PayloadWindow | None]:
    if current.uri is not None:
        source = resolve_source(current.uri)
        schema = read_schema(source)

        def read(columns: list[str]) -> pa.Table:
            return read_table(source, columns, dictionary_columns=string_columns(schema, columns))

        return schema, read, {"uri": current.uri}, None
    assert current.payload_log is not None and current.model is not None
    window = payload_window(
        current.payload_log, current.model, current.window_duration, current.last_rows, current.now
    )
    return window.schema, window.read, window.description, window
