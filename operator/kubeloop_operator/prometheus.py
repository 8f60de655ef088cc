"""Canary analysis reads the inference servers' metrics from Prometheus's HTTP API (instant queries).

The servers export (kubeloop_serving.metrics) per `model` (the ModelDeployment's name), `version` and
`track` (stable|canary); Prometheus adds `namespace` (service discovery, or a static label). Every
query covers the same window for both tracks, ending at the same instant.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Any

from kubeloop_operator.rollout.checks import Measurement, TrackWindow

PREFIX = "kubeloop_serving_"
TRACKS = ("canary", "stable")


class PrometheusError(Exception):
    """Prometheus could not be asked, or refused the query."""


class Prometheus:
    """A client of one Prometheus server's HTTP API."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, expr: str, at: datetime) -> list[tuple[dict[str, str], float]]:
        """An instant query at `at`: (labels, value) per series."""
        data = urllib.parse.urlencode({"query": expr, "time": f"{at.timestamp():.3f}"}).encode()
        request = urllib.request.Request(f"{self.url}/api/v1/query", data=data, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as error:
            raise PrometheusError(f"{expr}: HTTP {error.code} {error.read()[:300]!r}") from error
        except (OSError, ValueError) as error:
            raise PrometheusError(f"cannot query Prometheus at {self.url}: {error}") from error
        if answer.get("status") != "success":
            raise PrometheusError(f"{expr}: {answer.get('error')}")
        result = answer["data"]["result"]
        return [(series["metric"], float(series["value"][1])) for series in result]

    def scalar(self, expr: str, at: datetime) -> float | None:
        """The value of a query that returns at most one series (None: no series, or not a number)."""
        series = self.query(expr, at)
        if not series:
            return None
        value = series[0][1]
        return value if math.isfinite(value) else None

    def track(self, selector: str, window: str, at: datetime) -> TrackWindow:
        """One track's requests, 5xx, p99 and output distribution over `window`."""
        requests = self.scalar(f"sum(increase({PREFIX}requests_total{{{selector}}}[{window}]))", at)
        errors = self.scalar(f'sum(increase({PREFIX}requests_total{{{selector},code=~"5.."}}[{window}]))', at)
        p99 = self.scalar(
            f"histogram_quantile(0.99, sum by (le) "
            f"(increase({PREFIX}request_duration_seconds_bucket{{{selector}}}[{window}])))",
            at,
        )
        return TrackWindow(requests or 0.0, errors or 0.0, p99, self.outputs(selector, window, at))

    def outputs(self, selector: str, window: str, at: datetime) -> dict[str, float]:
        """Predicted classes (classifiers) if the server counts them, else its prediction histogram's
        buckets turned from cumulative into per-bin counts."""
        classes = self.query(
            f"sum by (class) (increase({PREFIX}predicted_class_total{{{selector}}}[{window}]))", at
        )
        if classes:
            return {labels.get("class", ""): value for labels, value in classes if math.isfinite(value)}
        buckets = self.query(f"sum by (le) (increase({PREFIX}prediction_bucket{{{selector}}}[{window}]))", at)
        return bins(buckets)


def bins(buckets: list[tuple[dict[str, str], float]]) -> dict[str, float]:
    """Cumulative `le` buckets -> the count in each bin (keyed by its upper bound)."""
    ordered = sorted(
        ((float(labels["le"]), labels["le"], value) for labels, value in buckets if "le" in labels),
        key=lambda item: item[0],
    )
    out: dict[str, float] = {}
    below = 0.0
    for _, le, cumulative in ordered:
        if math.isfinite(cumulative):
            out[le] = max(cumulative - below, 0.0)
            below = max(cumulative, below)
    return out


def selector(namespace: str, model: str, track: str) -> str:
    """Label matchers of one track of one ModelDeployment (label values quoted as PromQL wants)."""
    return ",".join(
        f"{k}={json.dumps(v)}" for k, v in (("namespace", namespace), ("model", model), ("track", track))
    )


def measure(prometheus: Prometheus, namespace: str, model: str, seconds: int, at: datetime) -> Measurement:
    """Both tracks over the `seconds` before `at`."""
    window = f"{max(1, seconds)}s"
    canary, stable = (prometheus.track(selector(namespace, model, t), window, at) for t in TRACKS)
    return Measurement(canary=canary, stable=stable, window_seconds=seconds)
