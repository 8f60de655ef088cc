"""Canary analysis' Prometheus queries against a real Prometheus (Debian's) scraping real servers:
`kubeloop serve` processes for a stable and a canary track (request counts, 5xx share, p99, output
distribution), and a real /metrics exporter whose class counts and prediction buckets the test sets,
so that the PSI read through Prometheus can be checked against the exact value."""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from kubeloop.api.deployment import CanaryChecks
from kubeloop_operator.prometheus import Prometheus as PrometheusClient
from kubeloop_operator.prometheus import PrometheusError, measure
from kubeloop_operator.rollout.checks import evaluate, psi
from tests.fixtures.cluster import wait_for
from tests.fixtures.ports import free_port
from tests.fixtures.prometheus import Prometheus
from tests.unit.operator.canary_servers import (
    OutputExporter,
    TrackServer,
    quantile_bucket,
    reshape_model,
    scrape,
    scraped_total,
)

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(
        shutil.which("prometheus") is None, reason="Debian's prometheus: hack/install-system.sh"
    ),
]
NS = "team-a"
SCRAPE_SECONDS = 1  # tests/fixtures/prometheus.py
WARM_UP = 3  # the window's traffic is sent this many times before it
MODEL = "churn"


def now() -> datetime:
    return datetime.now(UTC)


def window_since(start: datetime) -> tuple[int, datetime]:
    """A window from `start` to a moment after the last scrape that saw the traffic."""
    end = now()
    return math.ceil((end - start).total_seconds()), end


@pytest.fixture(scope="module")
def tracks(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TrackServer, TrackServer, Prometheus]]:
    directory = tmp_path_factory.mktemp("canary-servers")
    stable = TrackServer(directory, reshape_model(directory / "stable.onnx"), MODEL, "stable", "1").start()
    # the canary: same answers, an extra matrix product per call (slower), and some requests fail
    slow = reshape_model(directory / "canary.onnx", work=384)
    canary = TrackServer(directory, slow, MODEL, "canary", "2").start()
    prometheus = Prometheus(
        directory,
        scrape(NS, {"stable": (stable.port, {}), "canary": (canary.port, {})}),  # the servers export track
    ).start()
    try:
        yield stable, canary, prometheus
    finally:
        prometheus.stop()
        stable.stop()
        canary.stop()


def test_counts_error_rate_and_p99_of_both_tracks(
    tracks: tuple[TrackServer, TrackServer, Prometheus],
) -> None:
    stable, canary, prometheus = tracks
    with httpx.Client(timeout=30) as client:
        # Every series exists before the window (increase() needs a baseline), and far from zero:
        # increase() stops extrapolating where a counter would reach zero, so a series whose baseline is
        # small next to its increase is extrapolated less than the others (seen in CI: with 1 failed
        # warm-up request the canary's error rate read 0.23, and with 1-2 requests per bucket its p99
        # moved up a bucket). The warm-up repeats the window's mix WARM_UP times, so every series'
        # baseline is WARM_UP times its increase and none is clipped.
        stable.send(client, good=200 * WARM_UP)
        canary.send(client, good=75 * WARM_UP, bad=25 * WARM_UP)
        wait_for(lambda: scraped_total(prometheus, 'track="canary"') == 100 * WARM_UP, 30, what="the warm-up")
        wait_for(lambda: scraped_total(prometheus, 'track="stable"') == 200 * WARM_UP, 30, what="the warm-up")
        start = now()
        time.sleep(1.5)  # a scrape of the flat baseline inside the window
        before = (stable.histogram(), canary.histogram())
        stable.send(client, good=200)
        canary.send(client, good=75, bad=25)
        after = (stable.histogram(), canary.histogram())
    wait_for(
        lambda: scraped_total(prometheus, 'track="canary"') == 100 * WARM_UP + 100,
        30,
        what="the canary's traffic",
    )
    wait_for(
        lambda: scraped_total(prometheus, 'track="stable"') == 200 * WARM_UP + 200,
        30,
        what="the stable traffic",
    )
    time.sleep(1.5)
    seconds, end = window_since(start)

    m = measure(PrometheusClient(prometheus.url), NS, MODEL, seconds, end)

    # increase() (reset-aware, as rate() is) extrapolates the samples' span to the window's edges: a
    # count is at least what was sent and at most that times window / (window - 2 scrape intervals);
    # ratios of series scraped together (error rate, quantiles, PSI) stay close (the extrapolation
    # differs per series only where it stops at the counter's zero point)
    stretch = seconds / (seconds - 2 * SCRAPE_SECONDS)
    assert 100 <= m.canary.requests <= 100 * stretch, (m.canary.requests, seconds)
    assert 200 <= m.stable.requests <= 200 * stretch, (m.stable.requests, seconds)
    assert m.canary.error_rate == pytest.approx(0.25, abs=0.01)
    assert m.stable.errors == 0 and m.stable.error_rate == 0
    for track, p99, (old, new) in (
        ("stable", m.stable.p99_seconds, (before[0], after[0])),
        ("canary", m.canary.p99_seconds, (before[1], after[1])),
    ):
        # in the bucket where the server's own histogram puts its p99, give or take the neighbouring
        # quantiles (extrapolation differs a little per bucket series, see above)
        lower, upper = quantile_bucket(old, new, 0.95)[0], quantile_bucket(old, new, 1.0)[1]
        assert p99 is not None and lower <= p99 <= upper, (track, p99, lower, upper)
    assert m.canary.p99_seconds > m.stable.p99_seconds  # type: ignore[operator]

    results = {r.name: r for r in evaluate(CanaryChecks(max_error_rate=0.01, max_p99_ratio=1.0), m)}
    assert results["errorRate"].passed is False and results["errorRate"].value == pytest.approx(
        0.25, abs=0.01
    )
    assert results["p99Ratio"].passed is False


def test_the_servers_output_distributions_match_when_their_answers_do(
    tracks: tuple[TrackServer, TrackServer, Prometheus],
) -> None:
    """Both tracks answer the same (the canary is only slower): the prediction histograms the servers
    export (float outputs) give a PSI near 0. Runs after the traffic of the test above."""
    stable, _, prometheus = tracks
    assert stable.exports("kubeloop_serving_prediction_bucket")
    seconds, end = 60, now()
    m = measure(PrometheusClient(prometheus.url), NS, MODEL, seconds, end)
    assert m.canary.outputs and m.stable.outputs
    assert psi(m.canary.outputs, m.stable.outputs) == pytest.approx(0, abs=0.05), "same answers, same outputs"


def test_psi_of_predicted_classes_and_of_prediction_buckets(tmp_path: Path) -> None:
    exporter = OutputExporter()
    prometheus = Prometheus(tmp_path, scrape(NS, {"outputs": (exporter.port, {})})).start()
    try:
        for track in ("stable", "canary"):
            for cls in ("0", "1"):
                exporter.classes.labels("clf", "1", track, cls).inc(0)
            exporter.predictions.labels("reg", "1", track)
        wait_for(
            lambda: len(prometheus.series("kubeloop_serving_predicted_class_total")) == 4, 30, what="baseline"
        )
        start = now()
        time.sleep(1.5)
        for cls, count in (("0", 500), ("1", 500)):
            exporter.classes.labels("clf", "1", "stable", cls).inc(count)
        for cls, count in (("0", 90), ("1", 10)):
            exporter.classes.labels("clf", "1", "canary", cls).inc(count)
        for value, count in ((0.1, 100), (0.6, 100)):
            for _ in range(count):
                exporter.predictions.labels("reg", "1", "stable").observe(value)
        for value, count in ((0.1, 20), (0.6, 20), (0.9, 160)):
            for _ in range(count):
                exporter.predictions.labels("reg", "1", "canary").observe(value)
        wait_for(
            lambda: prometheus.series('sum(kubeloop_serving_predicted_class_total{track="canary"}) == 100'),
            30,
            what="the counts scraped",
        )
        wait_for(
            lambda: prometheus.series('sum(kubeloop_serving_prediction_count{track="canary"}) == 200'),
            30,
            what="the histogram scraped",
        )
        time.sleep(1.5)
        seconds, end = window_since(start)
        client = PrometheusClient(prometheus.url)

        classes = measure(client, NS, "clf", seconds, end)
        total = sum(classes.canary.outputs.values())
        assert {k: v / total for k, v in classes.canary.outputs.items()} == pytest.approx(
            {"0": 0.9, "1": 0.1}
        )
        expected = (0.9 - 0.5) * math.log(0.9 / 0.5) + (0.1 - 0.5) * math.log(0.1 / 0.5)
        assert psi(classes.canary.outputs, classes.stable.outputs) == pytest.approx(expected, rel=1e-6)

        buckets = measure(client, NS, "reg", seconds, end)
        total = sum(buckets.canary.outputs.values())
        shares = {k: v / total for k, v in buckets.canary.outputs.items()}
        assert shares == pytest.approx({"0.25": 0.1, "0.5": 0.0, "0.75": 0.1, "1.0": 0.8, "+Inf": 0.0})
        checks = evaluate(CanaryChecks(max_error_rate=None, max_output_psi=0.2), buckets)
        assert [(c.name, c.passed) for c in checks] == [("outputPsi", False)]
    finally:
        prometheus.stop()
        exporter.stop()


def test_an_unreachable_prometheus_is_an_error_not_a_verdict() -> None:
    with pytest.raises(PrometheusError, match="cannot query Prometheus"):
        measure(PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout=2), NS, MODEL, 60, now())
