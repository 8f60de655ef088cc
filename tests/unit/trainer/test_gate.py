"""The champion/challenger decision: direction per metric, margin, ties, no champion, bad scores."""

from __future__ import annotations

import math

import pytest

from kubeloop.api.challenge import Challenge, direction_of
from kubeloop_trainer.gate import TIE_TOLERANCE, beats, verdict

pytestmark = pytest.mark.unit


def challenge(metric: str = "roc_auc", margin: float = 0.0) -> Challenge:
    return Challenge.model_validate(
        {
            "champion": "models:/churn@champion",
            "dataset": {"uri": "/eval.parquet"},
            "metric": metric,
            "margin": margin,
        }
    )


@pytest.mark.parametrize(
    ("metric", "direction"),
    [
        ("accuracy", "maximize"),
        ("precision", "maximize"),
        ("recall", "maximize"),
        ("f1", "maximize"),
        ("roc_auc", "maximize"),
        ("r2", "maximize"),
        ("loss", "minimize"),
        ("rmse", "minimize"),
        ("mae", "minimize"),
    ],
)
def test_every_metric_has_a_direction(metric: str, direction: str) -> None:
    assert direction_of(metric) == direction


@pytest.mark.parametrize(
    ("metric", "challenger", "champion", "margin", "passes"),
    [
        ("roc_auc", 0.91, 0.90, 0.0, True),  # better
        ("roc_auc", 0.90, 0.90, 0.0, True),  # a tie passes at margin 0
        ("roc_auc", 0.89, 0.90, 0.0, False),  # worse
        ("roc_auc", 0.91, 0.90, 0.02, False),  # better, but not by the margin
        ("roc_auc", 0.92, 0.90, 0.02, True),  # better by exactly the margin (float noise forgiven)
        ("roc_auc", 0.90, 0.90, 0.01, False),  # a tie fails with a margin
        ("rmse", 3.0, 4.0, 0.0, True),  # lower is better
        ("rmse", 4.0, 4.0, 0.0, True),
        ("rmse", 4.5, 4.0, 0.0, False),
        ("rmse", 3.5, 4.0, 0.5, True),
        ("rmse", 3.6, 4.0, 0.5, False),
        ("loss", 0.30, 0.25, 0.0, False),
        ("mae", 1.0, 1.0 + TIE_TOLERANCE / 10, 0.0, True),
        ("r2", -0.5, -0.4, 0.0, False),  # r2 can be negative; higher is still better
    ],
)
def test_beats(metric: str, challenger: float, champion: float, margin: float, passes: bool) -> None:
    assert beats(challenger, champion, metric, margin) is passes
    result = verdict(
        challenge(metric, margin),
        champion_version="3",
        challenger_score=challenger,
        champion_score=champion,
        rows=100,
    )
    assert result.outcome == ("Passed" if passes else "NotBeaten")
    assert result.passed is passes
    assert (result.challenger_score, result.champion_score) == (challenger, champion)
    assert result.direction == direction_of(metric)


def test_not_beaten_message_names_both_scores_and_the_bound() -> None:
    result = verdict(
        challenge("roc_auc", 0.01), champion_version="3", challenger_score=0.5, champion_score=0.9, rows=400
    )
    assert result.outcome == "NotBeaten"
    assert result.message == (
        "champion not beaten: challenger roc_auc 0.5 < champion models:/churn@champion (version 3) 0.9"
        " + margin 0.01 on 400 rows"
    )
    lower = verdict(challenge("rmse"), champion_version="1", challenger_score=5.0, champion_score=4.0)
    assert "challenger rmse 5 > champion" in lower.message and "- margin 0" in lower.message


def test_no_champion_passes_as_the_first_model() -> None:
    result = verdict(challenge(), champion_version=None, challenger_score=0.7, rows=50)
    assert result.outcome == "FirstModel" and result.passed
    assert result.champion_score is None and result.challenger_score == 0.7
    assert "no champion at models:/churn@champion yet" in result.message


@pytest.mark.parametrize("bad", [math.nan, math.inf, None])
def test_scores_that_are_not_numbers_are_not_comparable(bad: float | None) -> None:
    worse_challenger = verdict(challenge(), champion_version="2", challenger_score=bad, champion_score=0.8)
    worse_champion = verdict(challenge(), champion_version="2", challenger_score=0.8, champion_score=bad)
    for result in (worse_challenger, worse_champion):
        assert result.outcome == "NotComparable" and not result.passed
    assert worse_challenger.challenger_score is None and worse_champion.champion_score is None
    # without a champion only the challenger's score counts
    assert verdict(challenge(), champion_version=None, challenger_score=bad).outcome == "NotComparable"


def test_a_problem_fails_the_gate_whatever_the_scores() -> None:
    result = verdict(
        challenge(), champion_version="2", challenger_score=0.99, problem="the evaluation data lacks features"
    )
    assert result.outcome == "NotComparable" and not result.passed
    assert result.message.endswith("the evaluation data lacks features")
