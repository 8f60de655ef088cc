"""The data plane of the loop, for real, here: train -> register -> serve -> traffic -> drift check.

Simulated nodes (kwok) run no containers, so `make demo` runs the same commands the pods would run as local
processes: a real MLflow server, `kubeloop train` (registers churn@champion), `kubeloop serve
models:/churn@champion` with payload logging, live traffic (first like the training data, then shifted),
and `kubeloop drift check` against the payload log, which writes an HTML report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.fixtures.mlflow_server import free_port, running_mlflow_server  # noqa: E402

WORK = ROOT / ".run/demo"
FEATURES = ["tenure_months", "monthly_charges", "support_calls", "usage_gb"]


def say(message: str) -> None:
    print(f"  -> {message}", flush=True)


def churn_data(rows: int, shift: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 12.0, rows) * (1 - 0.5 * shift)
    charges = rng.normal(70 + 25 * shift, 20, rows)
    calls = rng.poisson(1.5 + 3 * shift, rows).astype(float)
    usage = rng.lognormal(3.0, 0.6, rows)
    risk = -0.05 * tenure + 0.03 * charges + 0.5 * calls - 2.5
    label = (rng.random(rows) < 1 / (1 + np.exp(-risk))).astype(np.int64)
    return {
        "tenure_months": tenure,
        "monthly_charges": charges,
        "support_calls": calls,
        "usage_gb": usage,
        "churned": label,
    }


def post(url: str, body: Any) -> dict[str, object]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, object] = json.load(response)
        return result


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}; see {WORK / 'serve.log'}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the server did not become ready; see {WORK / 'serve.log'}")


def send_traffic(base: str, data: dict[str, np.ndarray], batch: int = 25) -> int:
    matrix = np.stack([data[f] for f in FEATURES], axis=1).astype(np.float32)
    with urllib.request.urlopen(f"{base}/v2/models/churn", timeout=10) as response:
        name = json.load(response)["inputs"][0]["name"]  # whatever the exporter called it
    sent = 0
    for start in range(0, len(matrix), batch):
        rows = matrix[start : start + batch]
        body = {
            "inputs": [
                {"name": name, "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}
            ]
        }
        post(f"{base}/v2/models/churn/infer", body)
        sent += len(rows)
    return sent


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kubeloop = [sys.executable, "-m", "kubeloop"]
    with running_mlflow_server(WORK / "mlflow") as mlflow:
        env |= {"MLFLOW_TRACKING_URI": mlflow.tracking_uri, "MLFLOW_EXPERIMENT_NAME": "demo"}
        say(f"MLflow server at {mlflow.tracking_uri}")

        reference = WORK / "train.parquet"
        pq.write_table(pa.table(churn_data(4000, 0.0, seed=1)), reference)
        spec = {
            "dataset": {"uri": str(reference), "targetColumn": "churned"},
            "builtin": {"algorithm": "gradient_boosting", "task": "classification"},
            "hyperparameters": {"n_estimators": 60, "max_depth": 3},
            "register": {"modelName": "churn", "alias": "champion"},
        }
        (WORK / "spec.json").write_text(json.dumps(spec))
        say(
            "kubeloop train: gradient boosting on 4,000 rows, tracked in MLflow, exported to ONNX, registered"
        )
        trained = subprocess.run(
            [
                *kubeloop,
                "train",
                "--spec",
                str(WORK / "spec.json"),
                "--termination-log",
                str(WORK / "train.summary"),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if trained.returncode != 0:
            raise SystemExit(f"training failed:\n{trained.stderr[-2000:]}")
        summary = json.loads(trained.stdout.strip().splitlines()[-1])
        say(f"registered {summary['registeredModel']} metrics {summary['metrics']}")

        port = free_port()
        serve_env = env | {
            "KUBELOOP_SERVING_MODEL_URI": "models:/churn@champion",
            "KUBELOOP_SERVING_MODEL_NAME": "churn",
            "KUBELOOP_SERVING_HOST": "127.0.0.1",
            "KUBELOOP_SERVING_PORT": str(port),
            "KUBELOOP_SERVING_PAYLOAD_LOG_URI": str(WORK / "payloads"),
            "KUBELOOP_SERVING_PAYLOAD_LOG_SAMPLE_RATE": "1.0",
            "KUBELOOP_SERVING_PAYLOAD_LOG_FLUSH_SECONDS": "1",
        }
        with (WORK / "serve.log").open("wb") as log:
            server = subprocess.Popen(
                [*kubeloop, "serve"], env=serve_env, stdout=log, stderr=subprocess.STDOUT
            )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(f"{base}/v2/models/churn/ready", server)
            say(f"kubeloop serve: models:/churn@champion ready at {base} (Open Inference Protocol v2)")
            sent = send_traffic(base, churn_data(1000, 0.0, seed=2))
            sent += send_traffic(base, churn_data(1000, 1.0, seed=3))
            say(f"sent {sent} rows of live traffic: 1,000 like the training data, then 1,000 shifted")
        finally:
            server.send_signal(signal.SIGTERM)  # graceful drain flushes the payload log
            server.wait(timeout=60)

        report = WORK / "drift-report"
        say("kubeloop drift check: the newest 1,000 payload rows against the training data")
        check = subprocess.run(
            [
                *kubeloop,
                "drift",
                "check",
                "--reference",
                str(reference),
                "--payload-log",
                str(WORK / "payloads"),
                "--model",
                "churn",
                "--last-rows",
                "1000",
                "--output-dir",
                str(report),
                "--termination-log",
                str(WORK / "drift.summary"),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        print(check.stdout.strip())
        if check.returncode != 0:
            raise SystemExit(f"drift check failed ({check.returncode}): {check.stderr[-2000:]}")
        say(f"HTML report: {report / 'report.html'}")


if __name__ == "__main__":
    main()
