"""Performance estimation benchmark: kubeloop's CBPE vs NannyML's, same data and chunks, as JSON.

    .venv/bin/python -m bench.performance_estimation [--chunks 10] [--chunk-size 5000] [--seed 0]
                                                     [--calibrated-model]

Synthetic binary classifier: a feature x, the true P(y=1 | x) = sigmoid(2x), and a model whose
score sigmoid(1.2x + 0.3) is miscalibrated (so calibration matters); predictions are
score >= 0.5. The reference (labelled, 20,000 rows) has x ~ N(0, 1); the analysis chunks shift x's
mean from 0 to 1.5 (covariate shift: the score's calibration still holds, CBPE's assumption) and
its labels are drawn too, for the realized value per chunk. NannyML 0.13.1 runs in its own
virtualenv (created here, without a prompt, when missing: ~/.cache/kubeloop/venv-nannyml) on
the same Parquet files and chunk size. Printed: per chunk, both estimates and the realized value;
per metric, the largest |kubeloop - NannyML| and the largest |estimate - realized| of each; the
wall time of fit + estimate of each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kubeloop_drift.performance.cbpe import CBPE
from kubeloop_drift.performance.metrics import compute

ROOT = Path(__file__).resolve().parent.parent
NANNYML_VENV = Path.home() / ".cache" / "kubeloop" / "venv-nannyml"
NANNYML_REQUIREMENTS = ["nannyml==0.13.1", "statsmodels", "pyarrow"]  # 0.13.1 imports statsmodels undeclared
METRICS = ("accuracy", "f1", "roc_auc")
REFERENCE_ROWS = 20_000


def nannyml_python() -> Path:
    """The peer's interpreter; creates the venv (no prompt) when missing or broken."""
    python = NANNYML_VENV / "bin" / "python"
    probe = [str(python), "-c", "import nannyml; assert nannyml.__version__ == '0.13.1'"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    print(f"bench: creating {NANNYML_VENV} with {' '.join(NANNYML_REQUIREMENTS)}", file=sys.stderr)
    subprocess.run(["python3", "-m", "venv", str(NANNYML_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *NANNYML_REQUIREMENTS], check=True)  # fmt: skip
    return python


def synthetic(
    rng: np.random.Generator, shifts: np.ndarray, rows: int, calibrated: bool = False
) -> dict[str, np.ndarray]:
    """Rows whose x has the given mean per block of ``rows``: score, predicted, label."""
    x = np.concatenate([rng.normal(shift, 1.0, rows) for shift in shifts])
    label = (rng.uniform(size=len(x)) < 1 / (1 + np.exp(-2 * x))).astype(np.int64)
    score = 1 / (1 + np.exp(-(2 * x if calibrated else 1.2 * x + 0.3)))
    return {"score": score, "predicted": (score >= 0.5).astype(np.int64), "label": label}


def write(path: Path, columns: dict[str, np.ndarray]) -> None:
    pq.write_table(pa.table(columns), path)


def ours(reference: dict[str, np.ndarray], analysis: dict[str, np.ndarray], chunk: int) -> dict[str, Any]:
    started = time.perf_counter()
    estimator = CBPE.fit(reference["score"], reference["label"])
    per_chunk = [
        estimator.estimate(analysis["score"][i : i + chunk], analysis["predicted"][i : i + chunk])
        for i in range(0, len(analysis["score"]), chunk)
    ]
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "estimated": {m: [c[m] for c in per_chunk] for m in METRICS}}


def realized(analysis: dict[str, np.ndarray], chunk: int) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {m: [] for m in METRICS}
    for start in range(0, len(analysis["score"]), chunk):
        part = slice(start, start + chunk)
        found = compute("binary", METRICS, analysis["label"][part].astype(np.float64),
                        analysis["predicted"][part].astype(np.float64), analysis["score"][part])  # fmt: skip
        for metric in METRICS:
            values[metric].append(found[metric])
    return values


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--chunk-size", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--calibrated-model",
        action="store_true",
        help="scores already calibrated: NannyML may then skip calibration, which kubeloop always does",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    reference = synthetic(rng, np.zeros(1), REFERENCE_ROWS, args.calibrated_model)
    shifts = np.linspace(0.0, 1.5, args.chunks)
    analysis = synthetic(rng, shifts, args.chunk_size, args.calibrated_model)
    peer = nannyml_python()
    with tempfile.TemporaryDirectory(prefix="kubeloop-bench-cbpe-") as workdir:
        write(Path(workdir) / "reference.parquet", reference)
        write(Path(workdir) / "analysis.parquet", analysis)
        command = [str(peer), str(ROOT / "bench" / "performance_nannyml.py"), workdir, str(args.chunk_size)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"nannyml failed:\n{done.stderr[-3000:]}")
        theirs = json.loads(done.stdout.strip().splitlines()[-1])
    mine = ours(reference, analysis, args.chunk_size)
    truth = realized(analysis, args.chunk_size)
    summary: dict[str, Any] = {}
    for metric in METRICS:
        a, b, r = (np.array(v[metric]) for v in (mine["estimated"], theirs["estimated"], truth))
        summary[metric] = {
            "max_abs_diff_kubeloop_vs_nannyml": float(np.max(np.abs(a - b))),
            "max_abs_error_kubeloop_vs_realized": float(np.max(np.abs(a - r))),
            "max_abs_error_nannyml_vs_realized": float(np.max(np.abs(b - r))),
        }
    chunks = [
        {
            "chunk": index,
            "x_mean_shift": round(float(shift), 4),
            **{
                metric: {
                    "kubeloop": round(mine["estimated"][metric][index], 6),
                    "nannyml": round(theirs["estimated"][metric][index], 6),
                    "realized": round(truth[metric][index], 6),
                }
                for metric in METRICS
            },
        }
        for index, shift in enumerate(shifts)
    ]
    print(
        json.dumps(
            {
                "benchmark": "performance_estimation",
                "peer": f"nannyml {theirs['version']} CBPE (calibrated: {theirs['calibrated']})",
                "model_scores": "calibrated" if args.calibrated_model else "miscalibrated",
                "reference_rows": REFERENCE_ROWS,
                "chunks": args.chunks,
                "chunk_size": args.chunk_size,
                "per_metric": summary,
                "seconds_fit_and_estimate": {
                    "kubeloop": round(mine["seconds"], 4),
                    "nannyml": round(theirs["seconds"], 4),
                    "nannyml_over_kubeloop": round(theirs["seconds"] / mine["seconds"], 2),
                },
                "per_chunk": chunks,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
