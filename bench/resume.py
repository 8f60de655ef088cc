"""What resumable runs cost: epoch checkpoints in MLflow vs the same fit without them, as JSON.

    .venv/bin/python -m bench.resume [--epochs 20] [--rows 20000] [--hidden 256,256] [--repeats 3]

The trainer's own PyTorch loop (``fit_torch``, one process, CPU, one thread) on synthetic blobs,
with ``RunCheckpoints`` writing checkpoints (at most their time share) to a real local MLflow server
(SQLite, proxied artifacts: the upload goes over HTTP as from a pod), against the peer: the same
fit without checkpoints. Reported: wall time of each (median of --repeats), the ratio ours / peer,
the overhead per epoch, the checkpoint's size, and what taking one up costs a restarted gang or a
replaced pod (search + download + decode).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from kubeloop.api.training import TrainingJobSpec
from kubeloop_trainer.checkpoints import RunCheckpoints
from kubeloop_trainer.context import JobIdentity, RunContext
from kubeloop_trainer.features import build_features
from kubeloop_trainer.model import Recipe
from kubeloop_trainer.progress import Progress
from kubeloop_trainer.recording import Recorder
from kubeloop_trainer.resume import decode
from kubeloop_trainer.splits import SplitData, split_rows, take
from kubeloop_trainer.torch_models import fit_torch
from kubeloop_trainer.tracking import Tracker
from tests.fixtures.mlflow_server import running_mlflow_server


def blobs(rows: int, features: int = 20, classes: int = 4) -> SplitData:
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, size=(classes, features))
    labels = rng.integers(0, classes, size=rows)
    x = centers[labels] + rng.normal(0, 1, size=(rows, features))
    table = pa.table({**{f"f{i}": x[:, i] for i in range(features)}, "label": labels.astype(str)})
    built = build_features(table, "label", "classification")
    return take(built, split_rows(rows, built.y, 0.2, 0.1, seed=0))


def recorder_for(tracking_uri: str, uid: str, spec: TrainingJobSpec) -> Recorder:
    context = RunContext(spec=spec, job=JobIdentity("bench", "bench", uid), tracking_uri=tracking_uri)
    recorder = Recorder(context, Tracker(tracking_uri, "bench-resume"), Progress(enabled=False))
    recorder.start({})
    return recorder


def main() -> None:
    cli = argparse.ArgumentParser()
    cli.add_argument("--epochs", type=int, default=20)
    cli.add_argument("--rows", type=int, default=20_000)
    cli.add_argument("--hidden", default="256,256")
    cli.add_argument("--repeats", type=int, default=3)
    args = cli.parse_args()
    torch.set_num_threads(1)
    hidden = [int(units) for units in args.hidden.split(",")]
    hyperparameters: dict[str, Any] = {"epochs": args.epochs, "hiddenUnits": hidden, "batchSize": 256}
    data = blobs(args.rows)
    recipe = Recipe(
        "mlp", "classification", data.train.x.shape[1], 4, hyperparameters, early_stopping_patience=0
    )
    spec = TrainingJobSpec.model_validate(
        {
            "dataset": {"uri": "s3://bench/blobs.parquet"},
            "builtin": {"algorithm": "mlp"},
            "hyperparameters": hyperparameters,
        }
    )
    with (
        tempfile.TemporaryDirectory(prefix="kubeloop-bench-resume-") as scratch,
        running_mlflow_server(Path(scratch)) as server,
    ):
        uri = server.tracking_uri
        plain, checkpointed = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            fit_torch(recipe, data.train, data.validation)
            plain.append(time.perf_counter() - started)
            uid = uuid.uuid4().hex
            first = recorder_for(uri, uid, spec)
            checkpoints = RunCheckpoints(first.context, first, attempt=0)
            started = time.perf_counter()
            fit_torch(recipe, data.train, data.validation, checkpoints=checkpoints)
            checkpointed.append(time.perf_counter() - started)
        second = recorder_for(uri, uid, spec)
        restarted = RunCheckpoints(second.context, second, attempt=1)
        started = time.perf_counter()
        found = restarted.load()
        assert found is not None, "the restarted gang finds the checkpoint"
        state = decode(found)
        take_up = time.perf_counter() - started
    ours, peer = statistics.median(checkpointed), statistics.median(plain)
    print(
        json.dumps(
            {
                "bench": "resume",
                "epochs": args.epochs,
                "train_rows": len(data.train),
                "hidden_units": hidden,
                "parameters": sum(t.numel() for t in state.network.values()),
                "checkpoint_bytes": len(found),
                "fit_seconds": {"with_checkpoints": round(ours, 3), "peer_without": round(peer, 3)},
                "ratio_with_over_without": round(ours / peer, 3),
                "overhead_ms_per_epoch": round(1000 * (ours - peer) / args.epochs, 1),
                "take_up_seconds": round(take_up, 3),
                "resumes_after_epoch": state.epochs_run,
                "repeats": args.repeats,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
