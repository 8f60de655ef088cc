"""Parallel trials on real pods: three trial-worker pods share one Optuna study in a PostgreSQL (a
throwaway cluster on this host, reached by the pods at the node's address); one worker pod is killed
mid-study, is replaced, and the study still completes with every other trial intact.
(Written with the feature; not yet run on a real cluster.)"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import optuna
import pytest

from tests.e2e.loop import Loop, succeeded
from tests.e2e.platform import Platform
from tests.fixtures.churn import churn_data
from tests.fixtures.cluster import wait_for
from tests.fixtures.postgres import PostgresServer, running_postgres

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]
NAME = "churn-hpo"


@pytest.fixture(scope="module")
def loop(platform: Platform, e2e_namespace: str) -> Loop:
    run = Loop(e2e_namespace, model=f"churn-hpo-{e2e_namespace}")
    platform.put_table(run.train_uri, churn_data(2000, 0.0, seed=1))
    return run


@pytest.fixture(scope="module")
def database(platform: Platform) -> Iterator[PostgresServer]:
    node = platform.kubectl.run(
        "get", "nodes", "-o", "jsonpath={.items[0].status.addresses[?(@.type=='InternalIP')].address}"
    ).stdout.strip()
    with running_postgres(host=node) as server:
        yield server


def study_secret(url: str) -> dict[str, Any]:
    encoded = base64.b64encode(url.encode()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "optuna-db"}, "data": {"url": encoded}}


def test_three_worker_pods_share_one_study_and_survive_a_killed_worker(
    platform: Platform, loop: Loop, database: PostgresServer
) -> None:
    url = database.create_database(loop.namespace.replace("-", "_"))
    platform.apply(study_secret(url), loop.namespace)
    tj = loop.training_job(
        NAME,
        builtin={"algorithm": "mlp", "earlyStoppingPatience": 0},
        hyperparameters={"epochs": 30, "batchSize": 32},
        tuning={
            "strategy": "random",
            "maxTrials": 9,
            "parallelism": 3,
            "pruning": False,
            "storage": {"secretRef": {"name": "optuna-db", "key": "url"}},
            "objective": {"metric": "val_f1", "direction": "maximize"},
            "searchSpace": {"learning_rate": {"type": "float", "low": 0.0005, "high": 0.01, "log": True}},
        },
        register={"modelName": loop.model, "alias": "champion"},
    )
    platform.apply(tj, loop.namespace)
    uid = platform.kubectl.get("trainingjob", NAME, loop.namespace)["metadata"]["uid"]  # type: ignore[index]

    def running_trial_of_worker_2() -> int | None:
        try:
            study = optuna.load_study(study_name=f"kubeloop-{uid}", storage=url)
        except KeyError:
            return None
        running = [
            t.number
            for t in study.get_trials()
            if t.state == optuna.trial.TrialState.RUNNING
            and t.user_attrs.get("kubeloop.io/worker") == 2
            and t.intermediate_values
        ]
        return running[0] if running else None

    killed = wait_for(running_trial_of_worker_2, 600, interval=1, what="worker 2 in the middle of a trial")
    pods = platform.kubectl.items("pods", loop.namespace, f"job-name={NAME}")
    victim = next(
        p["metadata"]["name"]
        for p in pods
        if p["metadata"]["annotations"].get("batch.kubernetes.io/job-completion-index") == "2"
    )
    platform.kubectl.run("delete", "pod", victim, "-n", loop.namespace, "--grace-period=0", "--force")

    done = platform.wait_status("trainingjob", NAME, loop.namespace, succeeded, 1200, f"{NAME} Succeeded")
    status = done["status"]
    study = optuna.load_study(study_name=f"kubeloop-{uid}", storage=url)
    trials = study.get_trials()
    assert len(trials) == 9
    assert [t.number for t in trials if t.state == optuna.trial.TrialState.FAIL] == [killed]
    assert status["bestTrial"]["number"] != killed
    assert status["registeredModel"]["alias"] == "champion"
    job = platform.kubectl.get("job", NAME, loop.namespace)
    assert job is not None and job["spec"]["completionMode"] == "Indexed"
    assert job["status"].get("succeeded") == 3, "the replaced worker 2 rejoined and finished"
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    storage = next(e for e in env if e["name"] == "KUBELOOP_STUDY_STORAGE")
    assert storage["valueFrom"]["secretKeyRef"] == {"name": "optuna-db", "key": "url"}
    parent = platform.mlflow("runs/get", run_id=status["mlflowRunId"])["run"]
    tags = {t["key"]: t["value"] for t in parent["data"]["tags"]}
    progress = json.loads(tags["kubeloop.io/progress"])
    assert progress["trials"] == {"total": 9, "running": 0, "complete": 8, "pruned": 0, "failed": 1}
