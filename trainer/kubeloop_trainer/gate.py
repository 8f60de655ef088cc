"""The champion/challenger decision, on two scores: pure, so every rule is tested without a model.

The challenger passes when it is at least as good as the champion by ``margin`` in the metric's
direction: ``challenger >= champion + margin`` for metrics where higher is better,
``challenger <= champion - margin`` where lower is better. A tie passes at margin 0; the
comparison forgives ``TIE_TOLERANCE`` of floating-point noise. No champion: the first model
passes. A score that is missing or not finite makes the two not comparable, which fails.
"""

from __future__ import annotations

import math

from kubeloop.api.challenge import Challenge, ChallengeResult, GateOutcome, direction_of

TIE_TOLERANCE = 1e-9
MESSAGE_LIMIT = 512


def beats(challenger: float, champion: float, metric: str, margin: float) -> bool:
    """Whether ``challenger`` is at least as good as ``champion`` by ``margin`` for ``metric``."""
    gain = challenger - champion if direction_of(metric) == "maximize" else champion - challenger
    return gain >= margin - TIE_TOLERANCE


def _score(value: float | None) -> str:
    return "none" if value is None else f"{value:.6g}"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def comparison(
    challenge: Challenge, champion: str, challenger_score: float, champion_score: float, on_rows: str
) -> tuple[GateOutcome, str]:
    """Passed or NotBeaten, with both scores and the bound in words."""
    metric, margin = challenge.metric, challenge.margin
    wins = beats(challenger_score, champion_score, metric, margin)
    if direction_of(metric) == "maximize":
        relation, bound = (">=" if wins else "<"), f"+ margin {margin:g}"
    else:
        relation, bound = ("<=" if wins else ">"), f"- margin {margin:g}"
    verb = "champion beaten" if wins else "champion not beaten"
    return ("Passed" if wins else "NotBeaten"), (
        f"{verb}: challenger {metric} {_score(challenger_score)} {relation}"
        f" champion {champion} {_score(champion_score)} {bound}{on_rows}"
    )


def verdict(
    challenge: Challenge,
    *,
    champion_version: str | None,
    challenger_score: float | None,
    champion_score: float | None = None,
    rows: int | None = None,
    problem: str | None = None,
) -> ChallengeResult:
    """The gate's outcome. ``champion_version`` None: no champion exists; ``problem``: why the two
    models could not be scored on the evaluation data (then the challenger does not pass)."""
    metric = challenge.metric
    champion = challenge.champion
    if champion_version is not None:
        champion = f"{champion} (version {champion_version})"
    on_rows = f" on {rows} rows" if rows is not None else ""
    if problem is None and not _finite(challenger_score):
        problem = f"the challenger's {metric} is {_score(challenger_score)}"
    elif problem is None and champion_version is not None and not _finite(champion_score):
        problem = f"the champion's {metric} is {_score(champion_score)}"
    outcome: GateOutcome
    if problem is not None:
        outcome, message = "NotComparable", f"cannot compare with champion {champion}: {problem}"
    elif champion_version is None:
        outcome = "FirstModel"
        message = (
            f"no champion at {champion} yet: the first model passes"
            f" ({metric} {_score(challenger_score)}{on_rows})"
        )
    else:
        assert challenger_score is not None and champion_score is not None  # checked as finite above
        outcome, message = comparison(challenge, champion, challenger_score, champion_score, on_rows)
    return ChallengeResult(
        outcome=outcome,
        metric=metric,
        direction=direction_of(metric),
        margin=challenge.margin,
        champion=challenge.champion,
        champion_version=champion_version,
        champion_score=champion_score if _finite(champion_score) else None,
        challenger_score=challenger_score if _finite(challenger_score) else None,
        rows=rows,
        message=message[:MESSAGE_LIMIT],
    )
