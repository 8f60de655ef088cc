"""The batch run budget on a real pod: a ModelDeployment's `spec.batching.maxRunMs` reaches its server,
which learns from its own runs how many rows fit in the budget, exports that limit
(`kubeloop_serving_batch_limit_rows`) and keeps its merged batches near it under load. The pod's CPU
limit (500m) reaches onnxruntime as one intra-op thread, read from the container's cgroup (v1 on this
node).

The model is the serving benchmark's small CNN (~1 ms of CPU a row here, the same per row alone or
merged). 32 clients sending back to back would fill batches of 32 rows (~30 ms of run) without the
budget; a 4 ms budget leaves a few rows. The call's fixed cost is far too small to raise that. (The
limit's floor is nine times the fixed cost; before that cost was bounded by the smallest size's runs,
the fit's intercept was noisy under load: one CI run fitted 0.29 ms, then 1.03 ms as slower mid-size
runs came in, and ended at a limit of 9 rows. The bound below is the one the batches are held to.)
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubeloop.loadgen import SteadyLoad
from tests.e2e.autoscale import ready, upload_model
from tests.e2e.loop import API, S3_ENV
from tests.e2e.platform import Platform
from tests.e2e.test_loop import record

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

NAME = "budget"
MAX_BATCH = 32
BUDGET_MS = 4
CLIENTS = 32
LOAD_SECONDS = 20


def batching(base_url: str) -> dict[str, Any]:
    """The pod's batch row limit and its batches so far: cumulative count per `le` bucket."""
    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    found: dict[str, Any] = {"limit": None, "buckets": {}}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("model") != NAME:
                continue
            if sample.name == "kubeloop_serving_batch_limit_rows":
                found["limit"] = sample.value
            elif sample.name == "kubeloop_serving_batch_size_bucket":
                found["buckets"][float(sample.labels["le"])] = sample.value
    return found


def test_batches_are_held_to_the_rows_that_fit_the_run_budget(platform: Platform, e2e_namespace: str) -> None:
    ns = e2e_namespace
    uri, body = upload_model(platform, ns)
    spec = {
        "model": {"uri": uri},
        "replicas": {"min": 1, "max": 1},
        "resources": {"cpu": "500m", "memory": "512Mi"},
        "envFrom": S3_ENV,
        "batching": {"maxBatchSize": MAX_BATCH, "maxRunMs": BUDGET_MS},
    }
    platform.apply(
        {"apiVersion": API, "kind": "ModelDeployment", "metadata": {"name": NAME}, "spec": spec}, ns
    )
    platform.wait_status("modeldeployment", NAME, ns, ready, 300, f"{NAME} Ready")
    loaded = platform.logs(f"kubeloop.io/modeldeployment={NAME}", ns)
    assert ": 1 intra-op threads" in loaded, (
        f"a 500m pod runs one onnxruntime thread (its cgroup's quota): {loaded}"
    )
    base = platform.service_url(NAME, ns)
    before = batching(base)
    assert before["limit"] == MAX_BATCH, f"nothing learned before any batch ran: {before}"

    with SteadyLoad(
        f"{base}/v2/models/{NAME}/infer", body, rate=100_000, connections=CLIENTS, timeout=30
    ) as load:
        time.sleep(LOAD_SECONDS)
    summary = load.result.summary()
    after = batching(base)
    buckets = {le: after["buckets"][le] - before["buckets"].get(le, 0.0) for le in after["buckets"]}
    batches = buckets[float("inf")]
    limit = after["limit"]
    # 32 clients back to back fill batches of 17-32 rows without the budget (the queue refills while one
    # runs); with it, only the batches run before two sizes had been timed get there. The limit is
    # re-learned as runs are re-timed, so this bounds the batches at 16 rows, not at the limit's last
    # value. (Before the server read cgroup v1's CPU quota, this 500m pod ran two intra-op threads and
    # timed runs in one thread's CPU time, which reads part of each run as fixed cost: limits of 4, 14,
    # 10 and 26 rows in four runs. Timed on the wall clock, the CFS stalls of the ramp-up's large
    # batches held it at 1 row in three runs.)
    over = batches - buckets[16.0]
    changes = [
        line
        for line in platform.logs(f"kubeloop.io/modeldeployment={NAME}", ns).splitlines()
        if "batch limit" in line
    ]
    record(
        "batch_budget",
        {
            "budget_ms": BUDGET_MS,
            "limit_rows": limit,
            "limit_changes": changes,  # the server's log: each change with its fit and sizes
            "batches": batches,
            "batches_by_rows_up_to": buckets,
            "load": summary,
        },
    )
    assert summary["answered"] > 0 and summary["failed"] == 0, summary
    assert 1 <= limit <= MAX_BATCH // 2, f"the budget holds batches well under {MAX_BATCH} rows: {after}"
    assert batches < summary["answered"], "requests were merged"
    assert over <= max(3, 0.05 * batches), f"batches over 16 rows once a limit was learned: {buckets}"
