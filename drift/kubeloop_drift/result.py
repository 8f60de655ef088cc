"""The result of a whole check: per-feature outcomes, the dataset verdict, and their forms
(result.json, the compact DriftSummary for the termination message, a verdict table)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubeloop.api.performance import PerformanceResult
from kubeloop.api.summaries import DriftSummary
from kubeloop_drift.outcome import FeatureOutcome

RESULT_KIND = "DriftResult"
RESULT_VERSION = 1


@dataclass(frozen=True)
class DatasetVerdict:
    """Dataset drift: the share of tested features that drifted reaches the configured share."""

    drifted_features: int
    tested_features: int
    drift_share: float
    drift_share_threshold: float
    dataset_drift: bool


def dataset_verdict(outcomes: list[FeatureOutcome], drift_share_threshold: float) -> DatasetVerdict:
    """Skipped features count in neither the numerator nor the denominator."""
    tested = [outcome for outcome in outcomes if outcome.tested]
    drifted = sum(outcome.drifted for outcome in tested)
    share = drifted / len(tested) if tested else 0.0
    return DatasetVerdict(
        drifted_features=drifted,
        tested_features=len(tested),
        drift_share=share,
        drift_share_threshold=drift_share_threshold,
        dataset_drift=bool(tested) and share >= drift_share_threshold,
    )


@dataclass
class DriftResult:
    """Everything a check found."""

    verdict: DatasetVerdict
    features: list[FeatureOutcome]
    reference: dict[str, Any]
    current: dict[str, Any]
    not_checked: dict[str, str] = field(default_factory=dict)
    timings_seconds: dict[str, float] = field(default_factory=dict)
    report_uri: str | None = None
    performance: PerformanceResult | None = None
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": RESULT_KIND,
            "version": RESULT_VERSION,
            "created": self.created,
            "dataset_drift": self.verdict.dataset_drift,
            "drift_share": self.verdict.drift_share,
            "drift_share_threshold": self.verdict.drift_share_threshold,
            "drifted_features": self.verdict.drifted_features,
            "tested_features": self.verdict.tested_features,
            "reference": self.reference,
            "current": self.current,
            "features": [outcome.to_json() for outcome in self.features],
            "not_checked": [{"name": name, "reason": reason} for name, reason in self.not_checked.items()],
            "report_uri": self.report_uri,
            "timings_seconds": {name: round(seconds, 4) for name, seconds in self.timings_seconds.items()},
            "performance": None if self.performance is None else self.performance.model_dump(mode="json"),
        }

    def summary(self) -> DriftSummary:
        """The compact verdict for the operator (tested features only)."""
        return DriftSummary(
            drift_share=self.verdict.drift_share,
            dataset_drift=self.verdict.dataset_drift,
            features=[outcome.feature_result() for outcome in self.features if outcome.tested],
            rows_reference=int(self.reference.get("rows", 0)),
            rows_current=int(self.current.get("rows", 0)),
            report_uri=self.report_uri,
            performance=self.performance,
        )

    def verdict_lines(self) -> list[str]:
        """A human-readable table of the verdicts, for stdout."""
        verdict = self.verdict
        lines = [
            f"dataset drift: {'YES' if verdict.dataset_drift else 'no'} "
            f"({verdict.drifted_features} of {verdict.tested_features} features drifted, "
            f"share {verdict.drift_share:.2f}, threshold {verdict.drift_share_threshold:.2f})"
        ]
        width = max([len(outcome.name) for outcome in self.features] + [7])
        lines.append(
            f"{'feature':<{width}}  {'kind':<11}  {'test':<13}  {'score':>10}  {'threshold':>9}  verdict"
        )
        for outcome in self.features:
            verdict_word = (
                "DRIFT" if outcome.drifted else ("skipped: " + outcome.skipped if outcome.skipped else "ok")
            )
            score = "-" if outcome.skipped else f"{outcome.score:.4g}"
            lines.append(
                f"{outcome.name:<{width}}  {outcome.kind:<11}  {outcome.test:<13}  {score:>10}  "
                f"{outcome.threshold:>9.4g}  {verdict_word}"
            )
        lines += [f"{name:<{width}}  not checked: {reason}" for name, reason in self.not_checked.items()]
        return lines + performance_lines(self.performance)


def performance_lines(performance: PerformanceResult | None) -> list[str]:
    """The performance verdict, for stdout (nothing when not configured)."""
    if performance is None:
        return []
    if performance.error is not None:
        return [f"performance: not measured: {performance.error}"]
    coverage = performance.label_coverage
    lines = [
        f"performance: {'DEGRADED' if performance.degraded else 'ok'} ({performance.labelled:,} labelled of "
        f"{performance.matured:,} matured predictions, coverage "
        f"{'-' if coverage is None else f'{coverage:.2f}'})"
    ]
    for metric in performance.metrics:
        value = "-" if metric.value is None else f"{metric.value:.4g}"
        interval = (
            f" [{metric.lower:.4g}, {metric.upper:.4g}]"
            if metric.lower is not None and metric.upper is not None
            else ""
        )
        breached = "  BREACHED" if metric.breached else ""
        lines.append(f"  {metric.source:<9}  {metric.metric:<8}  {value}{interval}{breached}")
    for fair in performance.fairness:
        value = "-" if fair.value is None else f"{fair.value:.4g}"
        lines.append(
            f"  fairness   {fair.attribute}: {fair.metric} {value}{'  BREACHED' if fair.breached else ''}"
        )
    return lines
