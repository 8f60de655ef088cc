"""The peer: NannyML's CBPE on the benchmark's files; run inside NannyML's own virtualenv.

    python bench/performance_nannyml.py WORKDIR CHUNK_SIZE

Reads WORKDIR/reference.parquet and WORKDIR/analysis.parquet (score, predicted, label), fits CBPE on
the reference, estimates the analysis chunks and prints JSON: per chunk the estimated accuracy, F1
and ROC AUC, whether NannyML calibrated, and the seconds fit + estimate took.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import nannyml
import pandas as pd
from nannyml.performance_estimation.confidence_based import CBPE

METRICS = ["accuracy", "f1", "roc_auc"]


def main() -> None:
    workdir, chunk_size = Path(sys.argv[1]), int(sys.argv[2])
    reference = pd.read_parquet(workdir / "reference.parquet")
    analysis = pd.read_parquet(workdir / "analysis.parquet")
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    estimator = CBPE(
        metrics=METRICS,
        y_pred_proba="score",
        y_pred="predicted",
        y_true="label",
        problem_type="classification_binary",
        chunk_size=chunk_size,
    )
    estimator.fit(reference)
    results = estimator.estimate(analysis.drop(columns=["label"])).filter(period="analysis").to_df()
    seconds = time.perf_counter() - started
    estimates = {metric: [float(v) for v in results[(metric, "value")]] for metric in METRICS}
    print(
        json.dumps(
            {
                "version": nannyml.__version__,
                "calibrated": bool(estimator.needs_calibration),
                "seconds": seconds,
                "estimated": estimates,
            }
        )
    )


if __name__ == "__main__":
    main()
