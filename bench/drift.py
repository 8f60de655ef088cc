"""Drift-check benchmark: kubeloop vs Evidently's DataDriftPreset, side by side, as JSON.

    .venv/bin/python bench/drift.py [--rows 1000000] [--data-dir DIR] [--skip-evidently]

Data (10 numeric + 10 categorical features, reference and current of --rows rows each) is
written to Parquet once. Each tool then runs in its own subprocess on the same files, reading
them itself: kubeloop through its CLI (profile from scratch, then cached), Evidently 0.7 in
its own virtual environment (created here when missing). Wall time is the subprocess's
(interpreter start and imports included); peak memory is its max RSS (os.wait4). Two
comparisons: each tool's default tests, and every feature forced to the same test and
threshold in both ("like for like"), with the verdicts side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.drift_data import FEATURES, ensure_data

ROOT = Path(__file__).resolve().parent.parent
EVIDENTLY_REQUIREMENTS = ["evidently>=0.7,<0.8", "pandas<3"]  # evidently 0.7 breaks on pandas 3
FORCED_TESTS = {
    **{f"num_{i}": {"test": "ks", "threshold": 0.05} for i in range(5)},
    **{f"num_{i}": {"test": "wasserstein", "threshold": 0.1} for i in range(5, 10)},
    **{f"cat_{i}": {"test": "jensenshannon", "threshold": 0.1} for i in range(4)},
    **{f"cat_{i}": {"test": "psi", "threshold": 0.2} for i in range(4, 7)},
    **{f"cat_{i}": {"test": "chi2", "threshold": 0.05} for i in range(7, 10)},
}
SAME_COMPUTATION = {
    "ks": "same: two-sample KS, scipy's exact/asymptotic p-value",
    "wasserstein": "same: Wasserstein-1 / reference std (floor 0.001)",
    "jensenshannon": "same for categorical: JS distance (natural log) over the union of categories",
    "psi": "same for categorical up to empty buckets: epsilon 1e-4 vs Evidently's fill",
    "chi2": "different form: kubeloop 2xK homogeneity (chi2_contingency), Evidently goodness of fit",
}


def measure(command: list[str], log: Path) -> dict[str, Any]:
    """Run a command; its wall time, peak RSS (MiB) and exit code, its output in ``log``."""
    with open(log, "w", encoding="utf-8") as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{log.read_text()[-3000:]}")
    return {"wall_seconds": round(wall, 3), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def ensure_evidently(venv: Path) -> Path:
    """The Evidently venv's python, created (no prompt) when missing."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import evidently, pandas; assert evidently.__version__.startswith('0.7')"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    print(f"bench: creating {venv} with {' '.join(EVIDENTLY_REQUIREMENTS)}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *EVIDENTLY_REQUIREMENTS, "pyarrow"], check=True)  # fmt: skip
    return python


@dataclass(frozen=True)
class Workspace:
    """The benchmark's files: the data both tools read, and where their outputs go."""

    reference: Path
    current: Path
    work: Path

    @property
    def profile(self) -> Path:
        return self.work / "profile.npz"


def run_kubeloop(space: Workspace, label: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """kubeloop's CLI end to end (read, profile or load it, check, write result.json and report.html)."""
    out = space.work / label
    command = [sys.executable, "-P", "-m", "kubeloop_drift", "check", "--reference", str(space.reference),
               "--current", str(space.current), "--output-dir", str(out), "--termination-log", os.devnull,
               "--profile-cache", str(space.profile)]  # fmt: skip
    if config is not None:
        command += ["--config", json.dumps(config)]
    measured = measure(command, space.work / f"{label}.log")
    result = json.loads((out / "result.json").read_text())
    features = {
        f["name"]: {k: f.get(k) for k in ("test", "score", "threshold", "drifted")}
        for f in result["features"]
    }
    return {
        **measured,
        "in_process_seconds": result["timings_seconds"],
        "profile_cached": result["reference"]["profile"]["cached"],
        "dataset_drift": result["dataset_drift"],
        "features": features,
    }


def run_evidently(
    python: Path, space: Workspace, label: str, tests: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Evidently's DataDriftPreset (read with pandas, Report.run, verdicts from its tests)."""
    output = space.work / f"{label}.json"
    script = Path(__file__).resolve().parent / "drift_evidently.py"
    command = [str(python), "-P", str(script), str(space.reference), str(space.current), str(output)]
    if tests:
        command.append(json.dumps(tests))
    measured = measure(command, space.work / f"{label}.log")
    result = json.loads(output.read_text())
    return {
        **measured,
        "in_process_seconds": result["seconds"],
        "dataset_drift": result["dataset_drift"],
        "features": result["features"],
    }


def side_by_side(kubeloop: dict[str, Any], evidently: dict[str, Any]) -> dict[str, Any]:
    """Per-feature verdicts of both tools, and how often they agree where the test is the same."""
    rows, same_test, agree = {}, 0, 0
    for spec in FEATURES:
        ours, theirs = kubeloop["features"][spec.name], evidently["features"][spec.name]
        same = ours["test"] == theirs["test"] and ours["threshold"] == theirs["threshold"]
        same_test += same
        agree += same and ours["drifted"] == theirs["drifted"]
        rows[spec.name] = {
            "change": spec.change,
            "kubeloop": _verdict(ours),
            "evidently": _verdict(theirs),
            "same_test": same,
            "agree": ours["drifted"] == theirs["drifted"],
        }
    return {
        "features": rows,
        "same_test_features": same_test,
        "agreeing_verdicts_where_same_test": agree,
        "dataset_drift": {"kubeloop": kubeloop["dataset_drift"], "evidently": evidently["dataset_drift"]},
    }


def _verdict(feature: dict[str, Any]) -> str:
    return f"{feature['test']} {feature['score']:.4g} -> {'DRIFT' if feature['drifted'] else 'ok'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of reference and of current")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "kubeloop-drift-bench")
    parser.add_argument("--evidently-venv", type=Path, default=ROOT / ".venv-evidently")
    parser.add_argument("--skip-evidently", action="store_true")
    args = parser.parse_args()
    data = args.data_dir / f"rows-{args.rows}"
    started = time.perf_counter()
    reference, current = ensure_data(data, args.rows)
    print(f"bench: data ready in {time.perf_counter() - started:.1f}s at {data}", file=sys.stderr)
    evidently_python = None if args.skip_evidently else ensure_evidently(args.evidently_venv)
    space = Workspace(reference, current, Path(tempfile.mkdtemp(prefix="run-", dir=data)))
    forced_config = {"tests": [{"feature": name, **test} for name, test in FORCED_TESTS.items()]}
    print("bench: kubeloop (profile from scratch, then cached, then forced tests)", file=sys.stderr)
    runs = {
        "from_scratch": run_kubeloop(space, "kubeloop-scratch"),
        "profile_cached": run_kubeloop(space, "kubeloop-cached"),
        "forced_tests_profile_cached": run_kubeloop(space, "kubeloop-forced", forced_config),
    }
    report: dict[str, Any] = {
        "benchmark": "drift check of 10 numeric + 10 categorical features, each tool in its own subprocess",
        "rows_reference": args.rows,
        "rows_current": args.rows,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "kubeloop": {name: _without_features(run) for name, run in runs.items()},
    }
    if evidently_python is not None:
        print("bench: evidently (default tests, then forced tests)", file=sys.stderr)
        default = run_evidently(evidently_python, space, "evidently-default")
        forced = run_evidently(evidently_python, space, "evidently-forced", FORCED_TESTS)
        report["evidently"] = {
            "default_tests": _without_features(default),
            "forced_tests": _without_features(forced),
        }
        report["ratio_evidently_time_over_kubeloop_time"] = {
            "default_tests_vs_profile_cached": _ratio(default, runs["profile_cached"]),
            "default_tests_vs_from_scratch": _ratio(default, runs["from_scratch"]),
            "forced_tests_vs_profile_cached": _ratio(forced, runs["forced_tests_profile_cached"]),
        }
        report["verdicts_default_tests"] = side_by_side(runs["profile_cached"], default)
        report["verdicts_forced_same_tests"] = side_by_side(runs["forced_tests_profile_cached"], forced)
        report["forced_test_notes"] = SAME_COMPUTATION
        report = {"headline": headline(report), **report}
    print(json.dumps(report, indent=2))


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The numbers to quote: times, memory, speed-up and verdict agreement."""
    kubeloop, evidently = report["kubeloop"], report["evidently"]
    forced = report["verdicts_forced_same_tests"]
    default = report["verdicts_default_tests"]
    ratios = report["ratio_evidently_time_over_kubeloop_time"]
    return {
        "wall_seconds": {
            "kubeloop_profile_cached": kubeloop["profile_cached"]["wall_seconds"],
            "kubeloop_from_scratch": kubeloop["from_scratch"]["wall_seconds"],
            "evidently": evidently["default_tests"]["wall_seconds"],
        },
        "peak_rss_mib": {
            "kubeloop_profile_cached": kubeloop["profile_cached"]["peak_rss_mib"],
            "kubeloop_from_scratch": kubeloop["from_scratch"]["peak_rss_mib"],
            "evidently": evidently["default_tests"]["peak_rss_mib"],
        },
        "evidently_time_over_kubeloop_time_wall": {
            "profile_cached": ratios["default_tests_vs_profile_cached"]["wall"],
            "from_scratch": ratios["default_tests_vs_from_scratch"]["wall"],
        },
        "verdict_agreement_default_tests": _agreement(default),
        "verdict_agreement_forced_same_tests": _agreement(forced),
        "disagreements_forced": {
            name: {"kubeloop": row["kubeloop"], "evidently": row["evidently"]}
            for name, row in forced["features"].items()
            if not row["agree"]
        },
    }


def _agreement(verdicts: dict[str, Any]) -> str:
    agreeing, same = verdicts["agreeing_verdicts_where_same_test"], verdicts["same_test_features"]
    return f"{agreeing} of {same} features with the same test"


def _ratio(evidently: dict[str, Any], kubeloop: dict[str, Any]) -> dict[str, float]:
    """Whole-subprocess wall time, and in-process time without imports (read + check + output)."""
    kubeloop_in_process = sum(kubeloop["in_process_seconds"].values())
    return {
        "wall": round(evidently["wall_seconds"] / kubeloop["wall_seconds"], 1),
        "in_process_without_imports": round(
            evidently["in_process_seconds"]["check_without_import"] / kubeloop_in_process, 1
        ),
    }


def _without_features(run: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in run.items() if key != "features"}


if __name__ == "__main__":
    main()
