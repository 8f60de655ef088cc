"""Canary checks over one analysis window: pure functions of what Prometheus reported per track."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from kubeloop.api.deployment import CanaryAnalysis, CanaryChecks
from kubeloop.api.deployment_status import CheckResult

Verdict = Literal["pass", "fail", "inconclusive"]
#: Shares below this count as this (PSI of a class one side never predicted stays finite).
PSI_FLOOR = 1e-4

# check names: the spec field without its `max` prefix
ERROR_RATE = "errorRate"
ERROR_RATE_INCREASE = "errorRateIncrease"
P99_SECONDS = "p99Seconds"
P99_RATIO = "p99Ratio"
OUTPUT_PSI = "outputPsi"


@dataclass(frozen=True)
class TrackWindow:
    """One track's traffic in the window: requests, 5xx answers, p99 latency, and its outputs (count per
    predicted class, or per prediction histogram bucket)."""

    requests: float = 0.0
    errors: float = 0.0
    p99_seconds: float | None = None
    outputs: dict[str, float] = field(default_factory=dict)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests > 0 else None


@dataclass(frozen=True)
class Measurement:
    canary: TrackWindow
    stable: TrackWindow
    window_seconds: float = 0.0


def finite(value: float | None) -> float | None:
    """NaN and infinities (an empty histogram's quantile) are 'not measured'."""
    return value if value is not None and math.isfinite(value) else None


def psi(actual: dict[str, float], expected: dict[str, float], floor: float = PSI_FLOOR) -> float | None:
    """Population stability index of `actual` against `expected` over the union of their bins;
    None when either side has nothing."""
    total_a, total_e = sum(actual.values()), sum(expected.values())
    if total_a <= 0 or total_e <= 0:
        return None
    score = 0.0
    for key in set(actual) | set(expected):
        a = max(actual.get(key, 0.0) / total_a, floor)
        e = max(expected.get(key, 0.0) / total_e, floor)
        score += (a - e) * math.log(a / e)
    return score


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def result(name: str, value: float | None, threshold: float) -> CheckResult:
    value = finite(value)
    passed = None if value is None else value <= threshold
    return CheckResult(
        name=name, value=None if value is None else round(value, 6), threshold=threshold, passed=passed
    )


def evaluate(checks: CanaryChecks, m: Measurement) -> list[CheckResult]:
    """Every configured check's value and verdict, in spec order (unset checks are left out)."""
    canary, stable = m.canary, m.stable
    canary_p99, stable_p99 = finite(canary.p99_seconds), finite(stable.p99_seconds)
    values: list[tuple[str, float | None, float | None]] = [
        (ERROR_RATE, canary.error_rate, checks.max_error_rate),
        (
            ERROR_RATE_INCREASE,
            difference(canary.error_rate, stable.error_rate),
            checks.max_error_rate_increase,
        ),
        (P99_SECONDS, canary_p99, checks.max_p99_seconds),
        (P99_RATIO, ratio(canary_p99, stable_p99), checks.max_p99_ratio),
        (OUTPUT_PSI, psi(canary.outputs, stable.outputs), checks.max_output_psi),
    ]
    return [result(name, value, threshold) for name, value, threshold in values if threshold is not None]


def verdict(analysis: CanaryAnalysis, m: Measurement, results: list[CheckResult]) -> Verdict:
    """Too few canary requests: inconclusive, whatever the checks say. Otherwise a failed check fails
    the window, and a configured check that could not be measured (stable answered nothing to compare
    with, a series is missing) holds it: a check is passed only once it has been measured."""
    if m.canary.requests < analysis.min_requests:
        return "inconclusive"
    if any(r.passed is False for r in results):
        return "fail"
    if unmeasured(results):
        return "inconclusive"
    return "pass"


def failing(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.passed is False]


def unmeasured(results: list[CheckResult]) -> list[str]:
    return [r.name for r in results if r.passed is None]


def describe(results: list[CheckResult]) -> str:
    """`errorRate 0.25 > 0.01, p99Seconds 1.2 > 0.5`: the failed checks, for conditions and Events."""
    return ", ".join(
        f"{r.name} {r.value:g} > {r.threshold:g}" for r in failing(results) if r.value is not None
    )
