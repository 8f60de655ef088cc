"""Progressive delivery on real pods, the safe loop's last stages: a challenger must beat the champion on
the same data to be registered as challenger; the ModelDeployment's canary (following @challenger) gets
an exact share of requests from the stable servers, is analysed step by step from the in-cluster
Prometheus, and is promoted (the champion alias moves, the stable servers roll) or rolled back (the
champion untouched) — under steady load, counting every request.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kubeloop.loadgen import SteadyLoad
from tests.e2e.delivery import (
    grpc_tracks,
    keyed_requests,
    logged_tracks,
    prometheus_sum,
    routes_on_every_stable_pod,
)
from tests.e2e.loop import (
    SERVER,
    Loop,
    churn_loop,
    infer_body,
    ready_with_version,
    serving_versions,
    succeeded,
)
from tests.e2e.platform import Platform
from tests.e2e.test_loop import record
from tests.fixtures.churn import TARGET, churn_data
from tests.fixtures.cluster import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

# Short steps so a run takes minutes; the servers are scraped every 5 s (hack/local-values.yaml).
ANALYSIS = {
    "steps": [10, 50],
    "intervalSeconds": 20,
    "warmupSeconds": 10,
    "minRequests": 100,
    "failureLimit": 0,
    "checks": {"maxErrorRate": 0.01, "maxP99Seconds": 2.0, "maxOutputPsi": 0.2},
}
RATE = 60  # requests per second through the Service
# Customers per request: every request is the same body, so its rows are the whole output distribution
# the analysis sees; 4 rows may all be predicted "stays" by any model, 64 are a fair sample.
ROWS = 64


@pytest.fixture(scope="module")
def loop(platform: Platform, e2e_namespace: str) -> Loop:
    run = churn_loop(platform, e2e_namespace)
    platform.put_table(holdout(run), churn_data(2000, 0.0, seed=7))
    return run


def holdout(loop: Loop) -> str:
    return f"s3://kubeloop/datasets/{loop.namespace}/holdout.parquet"


def train(platform: Platform, loop: Loop, name: str, **spec: Any) -> dict[str, Any]:
    platform.apply(loop.training_job(name, **spec), loop.namespace)
    status: dict[str, Any] = platform.wait_status(
        "trainingjob", name, loop.namespace, succeeded, 900, f"{name} Succeeded"
    )["status"]
    return status


def alias(platform: Platform, loop: Loop, name: str) -> str:
    answer = platform.mlflow("registered-models/alias", name=loop.model, alias=name)
    return str(answer["model_version"]["version"])


def deployment(loop: Loop) -> dict[str, Any]:
    canary = {"model": {"uri": f"models:/{loop.model}@challenger"}, "analysis": ANALYSIS}
    return loop.model_deployment(f"models:/{loop.model}@champion", canary=canary)


class Timeline:
    """The rollout's transitions as the status shows them, with seconds since the start."""

    def __init__(self, platform: Platform, loop: Loop) -> None:
        self.platform, self.loop, self.started = platform, loop, time.monotonic()
        self.events: list[dict[str, Any]] = []

    def rollout(self) -> dict[str, Any]:
        obj = self.platform.kubectl.get("modeldeployment", SERVER, self.loop.namespace) or {}
        rollout: dict[str, Any] = (obj.get("status") or {}).get("rollout") or {}
        seen = {k: rollout.get(k) for k in ("phase", "canaryVersion", "weight", "step", "failures")}
        if not self.events or {k: self.events[-1].get(k) for k in seen} != seen:
            self.events.append({"t": round(time.monotonic() - self.started, 1), **seen})
        return rollout

    def until(self, check: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            rollout = self.rollout()
            return rollout if check(rollout) else None

        found: dict[str, Any] = wait_for(done, timeout, interval=1, what=what)
        return found


def test_the_challenger_gate_registers_only_a_model_that_beats_the_champion(
    platform: Platform, loop: Loop
) -> None:
    # The champion: a boosted ensemble close to a logistic regression in predicted classes (so a good
    # challenger passes the output check later), but the label is logistic in the features, so a
    # logistic regression beats it on the holdout (ROC-AUC ~0.774 vs ~0.767 here); a stump does not.
    champion = train(
        platform,
        loop,
        "champion",
        builtin={"algorithm": "gradient_boosting"},
        hyperparameters={"n_estimators": 40, "max_depth": 3},
        register={"modelName": loop.model, "alias": "champion"},
    )
    assert champion["registeredModel"]["version"] == "1"
    gate = {
        "champion": f"models:/{loop.model}@champion",
        "dataset": {"uri": holdout(loop), "targetColumn": TARGET},
        "metric": "roc_auc",
        "margin": 0.0,
    }
    register = {"modelName": loop.model, "alias": "challenger"}
    weak = train(
        platform,
        loop,
        "weak",
        builtin={"algorithm": "gradient_boosting"},
        hyperparameters={"n_estimators": 1, "max_depth": 1},
        register=register,
        challenge=gate,
    )
    good = train(
        platform,
        loop,
        "good",
        builtin={"algorithm": "logistic_regression"},
        register=register,
        challenge=gate,
    )
    weak_gate = {c["type"]: c for c in weak["conditions"]}["ChallengerGate"]
    good_gate = {c["type"]: c for c in good["conditions"]}["ChallengerGate"]
    assert weak["challenge"]["outcome"] == "NotBeaten" and weak_gate["status"] == "False"
    assert good["challenge"]["outcome"] == "Passed" and good_gate["status"] == "True"
    assert good["challenge"]["challengerScore"] >= good["challenge"]["championScore"]
    assert alias(platform, loop, "challenger") == good["registeredModel"]["version"] == "3"
    assert alias(platform, loop, "champion") == "1", "the gate never moves the champion"
    scores = ("outcome", "championScore", "challengerScore")
    record(
        "challenger_gate",
        {k: {m: s["challenge"][m] for m in scores} for k, s in (("weak", weak), ("good", good))},
    )


def route_weights(platform: Platform, loop: Loop) -> list[float]:
    """The canary weight each stable server applies now, as the in-cluster Prometheus scraped it."""
    query = f'kubeloop_serving_route_weight_percent{{namespace="{loop.namespace}", route="canary"}}'
    answer = platform.prometheus("/api/v1/query", query=query)
    return [float(r["value"][1]) for r in answer["data"]["result"]]


STABLE_PODS = 3
ANSWERS = 2_500  # per weight


def in_effect(platform: Platform, loop: Loop, weight: int) -> bool:
    weights = route_weights(platform, loop)
    return len(weights) == STABLE_PODS and set(weights) == {float(weight)}


def test_the_split_is_exact_per_request_with_several_stable_pods_and_keepalive_clients(
    platform: Platform, loop: Loop
) -> None:
    """One canary pod, three stable pods; every weight gets 2,500 requests from 8 keep-alive clients,
    then 400 gRPC calls on one connection (one stable pod, whose counter picks for both protocols).

    Each stable pod's counter (kubeloop_serving.routing.split) gives the canary its exact share of
    any run of its picks, within one request; so the canary's count over all three pods is within
    three of ``weight %`` of the answers. The bound allows twice that: a pod that re-reads its routes
    starts a new counter, which adds one more run."""
    fixed = {"model": {"uri": f"models:/{loop.model}/3"}, "trafficPercent": 0}
    small = {"cpu": "200m", "memory": "1Gi"}
    three = {"min": STABLE_PODS, "max": STABLE_PODS}
    platform.apply(
        loop.model_deployment(f"models:/{loop.model}/1", canary=fixed, replicas=three, resources=small),
        loop.namespace,
    )
    platform.wait_status("modeldeployment", SERVER, loop.namespace, ready_with_version("1"), 600, "Ready v1")
    base = platform.service_url(SERVER, loop.namespace)
    grpc_target = platform.service_url(SERVER, loop.namespace, "grpc").removeprefix("http://")
    body = infer_body(base, 4, 0.0, seed=6)
    shares: dict[int, dict[str, Any]] = {}
    for weight in (1, 5, 10, 25, 50):
        fixed["trafficPercent"] = weight
        platform.apply(
            loop.model_deployment(f"models:/{loop.model}/1", canary=fixed, replicas=three, resources=small),
            loop.namespace,
        )
        wait_for(
            functools.partial(in_effect, platform, loop, weight),
            300,
            interval=2,
            what=f"weight {weight} in effect on the three stable servers",
        )
        with SteadyLoad(f"{base}/v2/models/{SERVER}/infer", body, rate=400, connections=8) as load:
            wait_for(lambda: load.result.answered >= ANSWERS, 300, interval=1, what=f"{ANSWERS} answers")
        result = load.result
        shares[weight] = {
            "answered": result.answered,
            "failed": result.failed,
            "canary": result.tracks["canary"],
            "canary_share_percent": round(100 * result.tracks["canary"] / result.answered, 3),
            "grpc_calls_by_track": dict(grpc_tracks(grpc_target, body, 400)),
        }
    record("canary_split", {"stable_pods": STABLE_PODS, "canary_pods": 1, "by_weight": shares})
    for weight, seen in shares.items():
        assert seen["failed"] == 0, shares
        expected = weight * seen["answered"] / 100
        assert abs(seen["canary"] - expected) <= 2 * STABLE_PODS, f"weight {weight}: {expected=} {seen}"
        expected_grpc = {"canary": 4 * weight, "stable": 400 - 4 * weight}
        assert seen["grpc_calls_by_track"] == expected_grpc, f"weight {weight}: {seen}"


def test_a_healthy_canary_walks_every_step_and_is_promoted_without_losing_a_request(
    platform: Platform, loop: Loop
) -> None:
    # Stable first, on the champion alone (the challenger alias is set: the canary starts at once).
    platform.apply(deployment(loop), loop.namespace)
    platform.wait_status("modeldeployment", SERVER, loop.namespace, ready_with_version("1"), 600, "Ready v1")
    base = platform.service_url(SERVER, loop.namespace)
    timeline = Timeline(platform, loop)
    with SteadyLoad(f"{base}/v2/models/{SERVER}/infer", infer_body(base, ROWS, 0.0, seed=3), RATE) as load:
        done = timeline.until(
            lambda r: r.get("phase") in ("Promoted", "RolledBack", "Aborted"), 900, "a verdict"
        )
        assert done["phase"] == "Promoted", f"healthy canary not promoted: {done}"
        wait_for(
            lambda: serving_versions(platform, loop.namespace) == {"3"}, 600, interval=2, what="stable on v3"
        )
        time.sleep(5)
    result = load.result.summary()
    record("canary_promoted", {"timeline": timeline.events, "checks": done.get("checks"), "load": result})
    assert alias(platform, loop, "champion") == "3", "promotion moved the champion alias"
    assert load.result.failed == 0, f"requests lost during the canary and its promotion: {result}"
    assert load.result.tracks["canary"] > 0, "the canary answered its share through the stable servers"
    assert all(c.get("passed") is not False for c in done.get("checks") or [])
    weights = [e["weight"] for e in timeline.events if e["phase"] == "Progressing"]
    assert 10 in weights and 50 in weights, f"both steps were walked: {timeline.events}"


def test_a_canary_that_predicts_differently_is_rolled_back_and_the_champion_stays(
    platform: Platform, loop: Loop
) -> None:
    # A model pinned to the challenger alias by hand (no gate), which answers nearly always "stays".
    bad = train(
        platform,
        loop,
        "different",
        builtin={"algorithm": "gradient_boosting"},
        hyperparameters={"n_estimators": 1, "max_depth": 1},
        register={"modelName": loop.model, "alias": "challenger"},
    )
    version = bad["registeredModel"]["version"]
    base = platform.service_url(SERVER, loop.namespace)
    timeline = Timeline(platform, loop)
    with SteadyLoad(f"{base}/v2/models/{SERVER}/infer", infer_body(base, ROWS, 0.0, seed=4), RATE) as load:
        timeline.until(lambda r: r.get("canaryVersion") == version, 300, f"a rollout of v{version}")
        done = timeline.until(
            lambda r: r.get("phase") in ("Promoted", "RolledBack", "Aborted"), 900, "a verdict"
        )
        time.sleep(10)
    result = load.result.summary()
    record("canary_rolled_back", {"timeline": timeline.events, "checks": done.get("checks"), "load": result})
    assert done["phase"] == "RolledBack", f"a canary with different outputs was not rolled back: {done}"
    failed = [c for c in done.get("checks") or [] if c.get("passed") is False]
    assert [c["name"] for c in failed] == ["outputPsi"], f"the output check failed, and only it: {failed}"
    steps = {e["step"] for e in timeline.events if e["phase"] == "Progressing"}
    assert done["weight"] == 0 and steps == {1}, f"rolled back at the first step: {timeline.events}"
    assert alias(platform, loop, "champion") == "3", "the champion alias did not move"
    assert serving_versions(platform, loop.namespace) == {"3"}, "stable untouched"
    assert load.result.failed == 0, f"requests lost during the canary and its rollback: {result}"
    events = platform.kubectl.run(
        "get", "events", "-n", loop.namespace, "--field-selector", "reason=RolledBack"
    )
    assert "outputPsi" in events.stdout, f"the Event names the failing check: {events.stdout}"


def test_sticky_ab_variants_and_a_shadow_whose_agreement_is_counted_exactly(
    platform: Platform, loop: Loop
) -> None:
    """Stable v3 (logistic) with an A/B arm `stump` (v4, 50%) keyed on x-user-id, and v4 again as a
    shadow of every stable answer. Every request has the same 64 rows, so the shadow's agreement is
    known exactly: the share of rows on which v3's and v4's labels (seen through the A/B arms) agree."""
    nsp = loop.namespace
    ab = {
        "header": "x-user-id",
        "variants": [
            {"name": "control", "weightPercent": 50},
            {"name": "stump", "model": {"uri": f"models:/{loop.model}/4"}, "weightPercent": 50},
        ],
    }
    shadow = {"model": {"uri": f"models:/{loop.model}/4"}, "percent": 100, "queueSize": 5000}
    two = {"min": 2, "max": 2}  # no autoscaling: a stable pod removed mid-test would take its counters
    platform.apply(
        loop.model_deployment(f"models:/{loop.model}/3", abTest=ab, shadow=shadow, replicas=two), nsp
    )

    def routed(status: dict[str, Any]) -> bool:
        arms = [status.get("shadow") or {}, *(status.get("abTest") or [])]
        return all(a.get("routed") for a in arms if a.get("name") != "control") and len(arms) == 3

    platform.wait_status("modeldeployment", SERVER, nsp, routed, 600, "the shadow and the A/B arm routed")
    wait_for(
        functools.partial(routes_on_every_stable_pod, platform, nsp, {"stump": 50.0, "shadow": 100.0}),
        300,
        interval=2,
        what="both stable servers apply the A/B and shadow routes (the kubelet refreshes the ConfigMap)",
    )
    base = platform.service_url(SERVER, nsp)
    started_ms = int(time.time() * 1000)
    seen = keyed_requests(f"{base}/v2/models/{SERVER}/infer", infer_body(base, ROWS, 0.0, seed=5), 400, 3)
    by_user: dict[str, set[str]] = {}
    labels: dict[str, set[tuple[int, ...]]] = {}
    for user, track, answer in seen:
        by_user.setdefault(user, set()).add(track)
        labels.setdefault(track, set()).add(answer)
    arms = Counter(next(iter(t)) for t in by_user.values())
    # the control arm is served by the stable servers, under the arm's name
    stable_answers = sum(1 for _, track, _ in seen if track == "control")
    (v3,), (v4,) = labels["control"], labels["stump"]
    expected = float(np.mean(np.array(v3) == np.array(v4)))
    rows = "kubeloop_serving_shadow_rows_total"
    compared = wait_for(
        lambda: (
            counts
            if sum((counts := prometheus_sum(platform, f'{rows}{{namespace="{nsp}"}}', "result")).values())
            >= ROWS * stable_answers
            else None
        ),
        180,
        interval=3,
        what="every mirrored copy compared and scraped",
    )
    query = f'kubeloop_serving_requests_total{{namespace="{nsp}", code="200"}}'
    requests = wait_for(
        lambda: (
            r
            if (r := prometheus_sum(platform, query, "track")).get("stump", 0) >= arms["stump"] * 3
            else None
        ),
        60,
        interval=3,
        what="the arm's requests scraped",
    )
    expected_rows = {"control": ROWS * stable_answers, "shadow": ROWS * stable_answers}
    expected_rows["stump"] = ROWS * (len(seen) - stable_answers)

    def flushed() -> pa.Table | None:
        table = logged_tracks(platform, loop, started_ms)
        counts = Counter(table.column("_track").to_pylist())
        return table if all(counts[t] >= n for t, n in expected_rows.items()) else None

    logged = wait_for(flushed, 120, interval=3, what=f"payload-log rows {expected_rows}")
    shadow_logged = logged.filter(pc.equal(logged.column("_track"), "shadow"))
    measured = {
        "users": len(by_user),
        "requests": len(seen),
        "users_per_arm": dict(arms),
        "answers_per_track": dict(Counter(t for _, t, _ in seen)),
        "expected_agreement": expected,
        "shadow_rows": compared,
        "requests_metric_by_track": requests,
        "payload_rows_by_track": dict(Counter(logged.column("_track").to_pylist())),
    }
    record("ab_and_shadow", measured)
    assert all(len(tracks) == 1 for tracks in by_user.values()), "a user moved between arms"
    assert set(arms) == {"control", "stump"} and abs(arms["stump"] / len(by_user) - 0.5) < 0.1, arms
    assert 0 < expected < 1, "the stump and the logistic model must differ on some rows, not all"
    assert sum(compared.values()) == ROWS * stable_answers, "each stable answer mirrored once"
    assert compared.get("agree", 0) / sum(compared.values()) == pytest.approx(expected, abs=1e-12)
    assert requests.get("stump") == arms["stump"] * 3, "the arm's own metrics count its requests"
    assert shadow_logged.num_rows == ROWS * stable_answers
    assert shadow_logged.column("_agrees").to_pylist().count(True) == round(expected * shadow_logged.num_rows)
    assert Counter(logged.column("_track").to_pylist()) == expected_rows, "every row logged once"
