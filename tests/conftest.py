"""Tiers are markers: unit (no cluster), cluster (real kube-apiserver + operator), e2e (real kubelet)."""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import settings as hypothesis_settings

# The same examples on every run, so CI cannot turn red by chance; HYPOTHESIS_PROFILE=explore draws anew.
hypothesis_settings.register_profile("repeatable", derandomize=True)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

pytest_plugins = [
    "tests.fixtures.cluster",
    "tests.fixtures.mlflow_server",
    "tests.fixtures.postgres",
    "tests.fixtures.s3",
]
TIERS = ("unit", "cluster", "e2e")
OUTCOMES: Counter[tuple[str, str]] = Counter()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fail-on-skip",
        action="store_true",
        help="a skipped test fails the run (make test installs everything every test needs)",
    )


def tier_of(item: pytest.Item) -> str:
    return next((t for t in TIERS if item.get_closest_marker(t)), "unmarked")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tier by tier, in the order of TIERS (each tier's tests in their collected order): the e2e tier
    runs last, so that `make test` builds what the real node needs (hack/e2e-deps.sh start) while the
    unit and cluster tiers run."""
    rank = {tier: index for index, tier in enumerate(TIERS)}
    items.sort(key=lambda item: rank.get(tier_of(item), 0))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and not hasattr(report, "wasxfail") and item.config.getoption("--fail-on-skip"):
        report.outcome = "failed"
        report.longrepr = f"skipped under --fail-on-skip: {report.longrepr}"
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        OUTCOMES[(tier_of(item), report.outcome)] += 1
    return None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say per tier what ran, so a skipped cluster tier can never hide in a green total."""
    terminalreporter.section("tests per tier")
    for tier in (*TIERS, "unmarked"):
        counts = {o: OUTCOMES[(tier, o)] for o in ("passed", "failed", "skipped") if OUTCOMES[(tier, o)]}
        if counts:
            terminalreporter.write_line(f"{tier:>8}: " + ", ".join(f"{n} {o}" for o, n in counts.items()))
