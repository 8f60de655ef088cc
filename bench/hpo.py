"""Parallel hyperparameter search: one study definition, 16 trials, 1 trial worker vs 4, as JSON.

    .venv/bin/python -m bench.hpo [--trials 16] [--workers 4] [--rounds 2] [--rows 8000] [--epochs 20]

Each run is a fresh study in a real PostgreSQL (a throwaway cluster) with a real MLflow server, its
trials run by real ``kubeloop train`` trial-worker processes on this host, with the environment a
trial-worker pod gets (one thread each, as pods with ``cpu: 1``). Wall time runs from starting the
workers to the last one exiting: imports, data loading, every trial, and worker 0's finalisation
(retraining the best trial, ONNX export, logging the model). Both runs use the same spec (an MLP on
generated data, Bayesian search with median pruning); only ``tuning.parallelism`` differs, so the
samplers' seeds differ per worker and the best objectives may differ a little too. On a host with
fewer cores than workers the workers share cores: ``cores`` is in the JSON, and the workers' CPU
seconds, whose ratio shows what running N processes costs beyond the trials (imports, data loading).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pyarrow as pa
import pyarrow.parquet as pq

from kubeloop.api.training import TrainingJobSpec
from kubeloop.contracts.trial_workers import study_name
from tests.fixtures.mlflow_server import running_mlflow_server
from tests.fixtures.postgres import PostgresServer, running_postgres
from tests.fixtures.trial_workers import Job, start_worker, stop_all


def write_dataset(path: Path, rows: int, features: int = 8, classes: int = 3, seed: int = 0) -> Path:
    """Overlapping Gaussian clusters: the learning rate and width matter, so trials differ."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1.2, size=(classes, features))
    labels = rng.integers(0, classes, size=rows)
    x = centers[labels] + rng.normal(0, 1, size=(rows, features))
    columns: dict[str, Any] = {f"f{i}": x[:, i].astype(np.float32) for i in range(features)}
    columns["label"] = [f"c{k}" for k in labels]
    pq.write_table(pa.table(columns), path)
    return path


def spec_json(dataset: Path, trials: int, parallelism: int, epochs: int) -> str:
    spec = TrainingJobSpec.model_validate(
        {
            "dataset": {"uri": str(dataset)},
            "builtin": {"algorithm": "mlp", "seed": 7, "earlyStoppingPatience": 0},
            "hyperparameters": {"epochs": epochs, "batchSize": 32},
            "tuning": {
                "strategy": "bayesian",
                "maxTrials": trials,
                "parallelism": parallelism,
                "storage": {"secretRef": {"name": "study-db", "key": "url"}},
                "objective": {"metric": "val_accuracy", "direction": "maximize"},
                "searchSpace": {
                    "learning_rate": {"type": "float", "low": 0.0003, "high": 0.03, "log": True},
                    "hidden_units": {"type": "categorical", "choices": ["8", "32", "64-32"]},
                },
            },
        }
    )
    return json.dumps(spec.wire())


def children_cpu() -> float:
    """CPU seconds (user + system) of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(
    postgres: PostgresServer,
    tracking_uri: str,
    dataset: Path,
    workdir: Path,
    trials: int,
    workers: int,
    round_: int,
    epochs: int,
) -> dict[str, Any]:
    name = f"hpo-bench-{workers}-{round_}"
    job = Job(
        name=name,
        uid=f"{name}-{os.getpid()}",
        spec_json=spec_json(dataset, trials, workers, epochs),
        tracking_uri=tracking_uri,
        storage_url=postgres.create_database(name.replace("-", "_")),
        workdir=workdir / name,
        count=workers,
        heartbeat_seconds=5,
    )
    started, cpu_before = time.perf_counter(), children_cpu()
    processes = [start_worker(job, index) for index in range(workers)]
    try:
        codes = [worker.wait() for worker in processes]
    finally:
        stop_all(processes)
    wall, cpu = time.perf_counter() - started, children_cpu() - cpu_before
    if any(codes):
        failed = next(w for w, code in zip(processes, codes, strict=True) if code)
        raise RuntimeError(f"worker {failed.index} exited {failed.process.returncode}:\n{failed.log_tail()}")
    study = optuna.load_study(study_name=study_name(job.uid, job.name), storage=job.storage_url)
    states = Counter(t.state.name.lower() for t in study.get_trials())
    per_worker = Counter(t.user_attrs.get("kubeloop.io/worker") for t in study.get_trials())
    summary = processes[0].summary()
    return {
        "round": round_,
        "parallelism": workers,
        "wall_seconds": round(wall, 2),
        "worker_cpu_seconds": round(cpu, 2),
        "best_objective": study.best_value,
        "best_trial": summary.best_trial.number if summary.best_trial else None,
        "trials": dict(states),
        "trials_per_worker": {str(k): v for k, v in sorted(per_worker.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="pairs of runs, in alternating order")
    parser.add_argument("--rows", type=int, default=8000, help="rows of the generated dataset")
    parser.add_argument("--epochs", type=int, default=20, help="most epochs of a trial (pruning stops some)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="kubeloop-bench-hpo-") as scratch:
        root = Path(scratch)
        dataset = write_dataset(root / "data.parquet", args.rows)
        with running_postgres() as postgres, running_mlflow_server(root / "mlflow") as mlflow:
            runs = []
            for round_ in range(args.rounds):  # alternating order: a busy host's drift hits both sides
                order = (1, args.workers) if round_ % 2 == 0 else (args.workers, 1)
                for workers in order:
                    runs.append(
                        one_run(
                            postgres,
                            mlflow.tracking_uri,
                            dataset,
                            root,
                            args.trials,
                            workers,
                            round_,
                            args.epochs,
                        )
                    )
    single = [r for r in runs if r["parallelism"] == 1]
    parallel = [r for r in runs if r["parallelism"] == args.workers]
    ratios = [round(s["wall_seconds"] / p["wall_seconds"], 2) for s, p in zip(single, parallel, strict=True)]
    result = {
        "benchmark": "parallel trial workers sharing one Optuna study in PostgreSQL",
        "study": f"mlp on {args.rows} rows, {args.epochs} epochs, TPE + median pruning, {args.trials} trials",
        "cores": os.cpu_count(),
        "threads_per_worker": 1,
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "runs": runs,
        "speedup_per_round": ratios,
        "speedup_meaning": f"wall time with parallelism 1 / wall time with parallelism {args.workers}",
        "cpu_ratio_per_round": [
            round(p["worker_cpu_seconds"] / s["worker_cpu_seconds"], 2)
            for s, p in zip(single, parallel, strict=True)
        ],
        "cpu_ratio_meaning": f"worker CPU seconds with parallelism {args.workers} / with parallelism 1",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
