"""Trust on real pods: a fairness gate that keeps a biased model out of the registry, explanations
answered by the model's own servers, and performance realized from labels posted after the fact.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.e2e.loop import SERVER, Loop, check_now, get, post, ready_with_version, succeeded
from tests.e2e.platform import Platform
from tests.e2e.test_loop import record
from tests.fixtures.churn import TARGET, churn_data, feature_matrix
from tests.fixtures.cluster import wait_for
from tests.unit.chart.test_alerts import ALERTS
from tests.unit.trainer.builders import lending

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]
ROWS_PER_REQUEST, REQUESTS = 8, 50
LABELLED_SHARE = 0.8
ACCURACY_FLOOR = 0.99  # above what this model reaches: the monitor must call it degraded, and alert


@pytest.fixture(scope="module")
def loop(platform: Platform, e2e_namespace: str) -> Loop:
    run = Loop(e2e_namespace, model=f"churn-{e2e_namespace}")
    platform.put_table(run.train_uri, churn_data(3000, 0.0, seed=1))
    return run


def put(platform: Platform, uri: str, table: pa.Table) -> None:
    platform.put_table(
        uri, {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    )


def test_a_biased_model_is_refused_registration_and_a_fair_one_is_registered(
    platform: Platform, loop: Loop
) -> None:
    fairness = {
        "sensitiveAttributes": ["sex"],
        "positiveClass": "approved",
        "thresholds": {"demographicParityDifference": 0.1, "equalizedOddsDifference": 0.1},
    }
    model = f"loans-{loop.namespace}"
    for kind in ("biased", "fair"):
        uri = f"s3://kubeloop/datasets/{loop.namespace}/loans-{kind}.parquet"
        put(platform, uri, lending(biased=kind == "biased"))
        job = loop.training_job(
            f"loans-{kind}",
            builtin={"algorithm": "logistic_regression"},
            fairness=fairness,
            register={"modelName": model, "alias": "champion"},
        )
        job["spec"]["dataset"] = {"uri": uri, "targetColumn": "label"}
        platform.apply(job, loop.namespace)
    done = {
        kind: platform.wait_status(
            "trainingjob", f"loans-{kind}", loop.namespace, succeeded, 900, f"loans-{kind} finished"
        )["status"]
        for kind in ("biased", "fair")
    }
    gates = {k: {c["type"]: c for c in s["conditions"]}["FairnessGate"] for k, s in done.items()}
    record(
        "fairness_gate",
        {
            k: {
                f: s["fairness"].get(f)
                for f in ("outcome", "demographicParityDifference", "equalizedOddsDifference")
            }
            | {"registered": s.get("registeredModel"), "condition": gates[k]["message"]}
            for k, s in done.items()
        },
    )
    assert done["biased"]["fairness"]["outcome"] == "Failed" and gates["biased"]["status"] == "False"
    assert (
        "demographicParityDifference" in gates["biased"]["message"] and "sex=" in gates["biased"]["message"]
    )
    assert "registeredModel" not in done["biased"], "a biased model never reaches the registry"
    assert done["fair"]["fairness"]["outcome"] == "Passed" and gates["fair"]["status"] == "True"
    assert done["fair"]["registeredModel"]["version"] == "1", "the fair model is the first and only version"


def infer(base: str, name: str, matrix: np.ndarray, request_id: str, sexes: list[str]) -> dict[str, Any]:
    body = {
        "id": request_id,
        "inputs": [
            {"name": name, "shape": list(matrix.shape), "datatype": "FP32", "data": matrix.ravel().tolist()}
        ],
        "parameters": {"attributes": {"sex": sexes}},
    }
    return post(f"{base}/v2/models/{SERVER}/infer", orjson.dumps(body))


def test_the_servers_explain_their_answers_with_treeshap(platform: Platform, loop: Loop) -> None:
    platform.apply(loop.gradient_boosting("champion"), loop.namespace)
    platform.wait_status("trainingjob", "champion", loop.namespace, succeeded, 900, "champion Succeeded")
    explain = {"enabled": True, "method": "tree", "backgroundUri": loop.train_uri, "backgroundRows": 100}
    platform.apply(loop.model_deployment(f"models:/{loop.model}@champion", explain=explain), loop.namespace)
    platform.wait_status("modeldeployment", SERVER, loop.namespace, ready_with_version("1"), 600, "Ready v1")
    base = platform.service_url(SERVER, loop.namespace)
    name = get(f"{base}/v2/models/{SERVER}")["inputs"][0]["name"]
    matrix = feature_matrix(churn_data(5, 0.0, seed=11))
    request = {
        "inputs": [
            {"name": name, "shape": list(matrix.shape), "datatype": "FP32", "data": matrix.ravel().tolist()}
        ]
    }

    def explained() -> dict[str, Any] | None:  # 503 while the explainer loads its background
        try:
            return post(f"{base}/v2/models/{SERVER}/explain", orjson.dumps(request))
        except urllib.error.HTTPError as error:
            if error.code == 503:
                return None
            raise

    answer = wait_for(explained, 120, interval=2, what="an explanation")
    served = post(f"{base}/v2/models/{SERVER}/infer", orjson.dumps(request))
    scores = np.asarray(next(o for o in served["outputs"] if o["datatype"] == "FP32")["data"]).reshape(5, -1)
    values, base_values = np.asarray(answer["values"]), np.asarray(answer["base_values"])
    margin = base_values + values.sum(axis=1)
    record(
        "explain",
        {
            "method": answer["method"],
            "feature_names": answer["feature_names"],
            "values_row0": values[0].tolist(),
        },
    )
    assert answer["method"] == "tree" and answer["post_transform"] == "LOGISTIC"
    assert values.shape == (5, 4, 2) and answer["feature_names"] == [
        "tenure_months",
        "monthly_charges",
        "support_calls",
        "usage_gb",
    ]
    np.testing.assert_allclose(1 / (1 + np.exp(-margin)), scores, atol=1e-5)
    # permutation SHAP and LIME need the `explain` extra, which the default image leaves out: a clear 503
    permutation = {**request, "parameters": {"method": "permutation"}}
    with pytest.raises(urllib.error.HTTPError) as refused:
        post(f"{base}/v2/models/{SERVER}/explain", orjson.dumps(permutation))
    assert refused.value.code == 503 and "explain" in refused.value.read().decode()


def test_labels_posted_later_give_realized_performance_and_coverage(platform: Platform, loop: Loop) -> None:
    """50 requests of 8 customers with ids and a sex attribute; true labels posted to the feedback
    endpoint for 80% of the rows; the monitor's realized accuracy equals the one computed here."""
    base = platform.service_url(SERVER, loop.namespace)
    name = get(f"{base}/v2/models/{SERVER}")["inputs"][0]["name"]
    before = logged_rows(platform, loop)
    data = churn_data(ROWS_PER_REQUEST * REQUESTS, 0.0, seed=21)
    matrix, truth = feature_matrix(data), data[TARGET]
    rng = np.random.default_rng(5)
    predicted, request_ids, rows, sexes = [], [], [], []
    for r in range(REQUESTS):
        part = slice(r * ROWS_PER_REQUEST, (r + 1) * ROWS_PER_REQUEST)
        sex = [str(s) for s in rng.choice(["F", "M"], ROWS_PER_REQUEST)]
        answer = infer(base, name, matrix[part], f"req-{r}", sex)
        assert answer["id"] == f"req-{r}"
        predicted += next(o for o in answer["outputs"] if o["datatype"] == "INT64")["data"]
        request_ids += [f"req-{r}"] * ROWS_PER_REQUEST
        rows += list(range(ROWS_PER_REQUEST))
        sexes += sex
    labelled = rng.random(len(truth)) < LABELLED_SHARE
    feedback = {
        "request_ids": [i for i, keep in zip(request_ids, labelled, strict=True) if keep],
        "rows": [r for r, keep in zip(rows, labelled, strict=True) if keep],
        "labels": [int(t) for t, keep in zip(truth, labelled, strict=True) if keep],
    }
    accepted = post(f"{base}/v2/models/{SERVER}/feedback", json.dumps(feedback).encode())
    assert accepted == {"accepted": int(labelled.sum())}
    monitor = loop.drift_monitor()
    monitor["spec"]["window"] = {"lastRows": ROWS_PER_REQUEST * REQUESTS}
    monitor["spec"]["action"] = {"type": "Alert"}
    monitor["spec"]["performance"] = {
        "task": "binary",
        "maturity": "0",
        "prediction": "label",
        "score": "probabilities.1",
        "metrics": [{"metric": "accuracy", "threshold": ACCURACY_FLOOR}],
        "sensitiveAttributes": ["sex"],
        "minGroupSize": 10,
        "bootstrapSamples": 0,
    }
    wait_for(
        lambda: logged_rows(platform, loop) >= before + len(truth),
        60,
        interval=2,
        what="payload rows flushed",
    )
    platform.apply(monitor, loop.namespace)
    check_now(platform, loop.namespace, "churn-drift", "perf-now")
    status = platform.wait_status(
        "driftmonitor",
        "churn-drift",
        loop.namespace,
        lambda s: (s.get("performance") or {}).get("labelled"),
        600,
        "performance measured",
    )["status"]
    performance = status["performance"]
    hits = (np.asarray(predicted) == truth)[labelled]
    realized = {m["metric"]: m["value"] for m in performance["metrics"] if m["source"] == "realized"}
    record("realized_performance", {"expected_accuracy": float(hits.mean()), "status": performance})
    assert performance["predictions"] == len(truth) and performance["labelled"] == int(labelled.sum())
    assert performance["labelCoverage"] == pytest.approx(labelled.mean(), abs=1e-9)
    assert realized["accuracy"] == pytest.approx(float(hits.mean()), abs=1e-9)
    assert {g["group"] for g in performance["groups"]} == {"F", "M"}
    assert hits.mean() < ACCURACY_FLOOR
    degraded = {c["type"]: c for c in status["conditions"]}["PerformanceDegraded"]
    assert degraded["status"] == "True", degraded
    # the chart's Prometheus loaded the alert rules, and the performance one fires for this monitor
    rules = platform.prometheus("/api/v1/rules")["data"]["groups"]
    assert {r["name"] for g in rules for r in g["rules"]} >= ALERTS
    selector = f'alertname="KubeloopModelPerformanceDrop", namespace="{loop.namespace}", alertstate="firing"'
    firing = f"ALERTS{{{selector}}}"
    alert = wait_for(
        lambda: platform.prometheus("/api/v1/query", query=firing)["data"]["result"],
        300,
        interval=5,
        what="KubeloopModelPerformanceDrop firing",
    )
    record("performance_alert", {"firing": [a["metric"] for a in alert]})
    assert "realized" in {a["metric"].get("source") for a in alert}, alert


def logged_rows(platform: Platform, loop: Loop) -> int:
    s3 = platform.s3()
    files = s3.glob(f"{loop.payloads}/{SERVER}/dt=*/*.parquet")
    return sum(int(pq.read_metadata(f, filesystem=s3).num_rows) for f in files)
