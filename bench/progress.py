"""What reading a TrainingJob's progress costs the operator: `read_progress` (experiment by name,
then a runs/search for the job's parent run, excluding its trial child runs) against the peer the
operator would use if it already knew the run id (one runs/get), on the same real MLflow server
(SQLite), for a job with many trial child runs. Interleaved rounds; prints JSON with the medians and
the ratio.

    python -m bench.progress            # about a minute
    python -m bench.progress --quick    # smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from kubeloop.api.progress import PROGRESS_TAG, TrainingProgress
from kubeloop_operator.progress import read_progress
from kubeloop_trainer.tags import UID_TAG
from kubeloop_trainer.tracking import Tracker
from tests.fixtures.mlflow_server import running_mlflow_server

UID = "6f1c2d3e-0000-4000-8000-bench"
EXPERIMENT = "bench-progress"


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    trials, rounds = (10, 10) if args.quick else (200, 100)
    with tempfile.TemporaryDirectory() as scratch, running_mlflow_server(Path(scratch)) as server:
        uri = server.tracking_uri
        tracker = Tracker(uri, EXPERIMENT)
        parent = tracker.start_run("job", {UID_TAG: UID})
        report = TrainingProgress(
            epoch=3, total_epochs=10, percent=30.0, eta_seconds=70.0, metrics={"f1": 0.8}
        )
        tracker.set_tags(parent, {PROGRESS_TAG: json.dumps(report.wire())})
        for number in range(trials):  # newer than the parent, same uid: the search must skip them
            tracker.start_run(f"job-trial-{number}", {UID_TAG: UID}, parent_run_id=parent)
        run_get = f"{uri}/api/2.0/mlflow/runs/get?run_id={parent}"

        def by_id() -> None:
            with urllib.request.urlopen(run_get, timeout=10) as response:
                response.read()

        def by_search() -> None:
            assert read_progress(uri, EXPERIMENT, UID) == report

        for _ in range(3):  # warm both paths
            by_id()
            by_search()
        search_ms, get_ms = [], []
        for _ in range(rounds):
            search_ms.append(timed(by_search))
            get_ms.append(timed(by_id))
    result = {
        "trial_child_runs": trials,
        "rounds": rounds,
        "read_progress_p50_ms": round(statistics.median(search_ms), 2),
        "read_progress_p90_ms": round(statistics.quantiles(search_ms, n=10)[-1], 2),
        "runs_get_p50_ms": round(statistics.median(get_ms), 2),
        "runs_get_p90_ms": round(statistics.quantiles(get_ms, n=10)[-1], 2),
        "ratio_p50_read_progress_over_runs_get": round(
            statistics.median(search_ms) / statistics.median(get_ms), 2
        ),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
