"""Runs Evidently's DataDriftPreset on the benchmark data; executed inside .venv-evidently.

usage: drift_evidently.py REFERENCE CURRENT OUTPUT_JSON [PER_COLUMN_TESTS_JSON]

Writes {"seconds": {...}, "dataset_drift": bool, "features": {name: {test, score, threshold,
drifted}}} where drifted is Evidently's own verdict (its per-column test status).
"""

from __future__ import annotations

import json
import sys
import time

TEST_NAMES = {
    "ks": "ks",
    "K-S p_value": "ks",
    "wasserstein": "wasserstein",
    "Wasserstein distance (normed)": "wasserstein",
    "jensenshannon": "jensenshannon",
    "Jensen-Shannon distance": "jensenshannon",
    "psi": "psi",
    "PSI": "psi",
    "chisquare": "chi2",
    "chi-square p_value": "chi2",
    "z": "z",
    "Z-test p_value": "z",
}
EVIDENTLY_METHOD = {
    "ks": "ks",
    "wasserstein": "wasserstein",
    "jensenshannon": "jensenshannon",
    "psi": "psi",
    "chi2": "chisquare",
}


def main() -> None:
    reference_path, current_path, output_path = sys.argv[1:4]
    tests = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    started = time.perf_counter()
    # Imported here, not at the top, so that their (long) import time is measured on its own.
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    imported = time.perf_counter()
    reference = pd.read_parquet(reference_path)
    current = pd.read_parquet(current_path)
    read = time.perf_counter()
    definition = DataDefinition(
        numerical_columns=[c for c in reference.columns if c.startswith("num_")],
        categorical_columns=[c for c in reference.columns if c.startswith("cat_")],
    )
    preset = DataDriftPreset(
        per_column_method={name: EVIDENTLY_METHOD[t["test"]] for name, t in tests.items()} or None,
        per_column_threshold={name: t["threshold"] for name, t in tests.items()} or None,
    )
    snapshot = Report([preset], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    ran = time.perf_counter()
    result = snapshot.dict()
    features = {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config.get("type") == "evidently:metric_v2:ValueDrift":
            features[config["column"]] = {
                "test": TEST_NAMES.get(config["method"], config["method"]),
                "score": float(metric["value"]),
                "threshold": config["threshold"],
            }
    dataset_drift = None
    for test in result["tests"]:
        params = test["metric_config"]["params"]
        if params.get("type") == "evidently:metric_v2:ValueDrift":
            features[params["column"]]["drifted"] = test["status"] == "FAIL"
        elif params.get("type") == "evidently:metric_v2:DriftedColumnsCount":
            dataset_drift = test["status"] == "FAIL"
    done = time.perf_counter()
    seconds = {
        "import": imported - started,
        "read": read - imported,
        "run": ran - read,
        "extract": done - ran,
        "total_in_process": done - started,
        "check_without_import": done - imported,
    }
    with open(output_path, "w", encoding="utf-8") as handle:
        json.dump({"seconds": seconds, "dataset_drift": dataset_drift, "features": features}, handle)


if __name__ == "__main__":
    main()
