"""``kubeloop drift`` end to end in-process: outputs, report, termination message, exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from kubeloop.api.summaries import DriftSummary, decode
from kubeloop_drift.cli import main
from kubeloop_drift.profile_store import PROFILE_SUFFIX

from .builders import mixed_table, write_payload_file

pytestmark = pytest.mark.unit

FEATURES = ["age", "income", "kids", "city", "member"]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    pq.write_table(
        mixed_table(3000, seed=1).append_column("label", pa.array([0] * 3000)), tmp_path / "ref.parquet"
    )
    pq.write_table(mixed_table(2000, seed=2), tmp_path / "same.parquet")
    pq.write_table(mixed_table(2000, seed=3, shift=1.0), tmp_path / "shifted.parquet")
    return tmp_path


def check(data: Path, *extra: str, current: str = "shifted.parquet") -> int:
    return main(
        [
            "check",
            "--reference", str(data / "ref.parquet"),
            "--current", str(data / current),
            "--termination-log", str(data / "termination"),
            "--quiet",
            *extra,
        ]
    )  # fmt: skip


def test_drift_is_a_finding_exit_zero_with_outputs(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check(data, "--output-dir", str(data / "out")) == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith("dataset drift: YES (5 of 5 features drifted")
    assert "label" in stdout and "not checked: not in the current data" in stdout
    result = json.loads((data / "out" / "result.json").read_text())
    assert result["dataset_drift"] is True and result["tested_features"] == 5
    assert [f["name"] for f in result["features"]] == FEATURES
    assert result["reference"]["profile"]["cached"] is False
    summary = decode((data / "termination").read_text())
    assert isinstance(summary, DriftSummary)
    assert (summary.dataset_drift, summary.rows_reference, summary.rows_current) == (True, 3000, 2000)
    assert summary.report_uri == str((data / "out" / "report.html").resolve())
    assert (data / ("ref.parquet" + PROFILE_SUFFIX)).exists()


def test_a_check_that_needs_no_scipy_stats_does_not_import_it(data: Path) -> None:
    # scipy.stats costs ~1 s of every check pod's start; only large-sample KS p-values (prefetched)
    # and ROC AUC (performance) use it. A fresh interpreter, as in the pod.
    script = (
        "import sys; from kubeloop_drift.cli import main; "
        f"code = main(['check', '--reference', {str(data / 'ref.parquet')!r}, "
        f"'--current', {str(data / 'shifted.parquet')!r}, '--quiet']); "
        "print(code, 'scipy.stats' in sys.modules)"
    )
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert ran.stdout.split()[-2:] == ["0", "False"], ran.stdout


def test_no_drift_and_cached_profile(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check(data, current="same.parquet") == 0
    assert check(data, "--output-dir", str(data / "out"), current="same.parquet") == 0
    assert capsys.readouterr().out.splitlines()[-8].startswith("dataset drift: no (0 of 5")
    result = json.loads((data / "out" / "result.json").read_text())
    assert result["reference"]["profile"]["cached"] is True


def test_html_report_has_a_plot_and_verdict_per_feature(data: Path) -> None:
    assert check(data, "--output-dir", str(data / "out"), "--report-uri", f"file://{data}/remote/run-1") == 0
    html = (data / "out" / "report.html").read_text()
    assert html == (data / "remote" / "run-1" / "report.html").read_text()
    assert html.count("<svg") == len(FEATURES)
    for name in FEATURES:
        card = re.search(rf'<div class="card" id="feature-{name}">.*?</div>', html, re.S)
        assert card is not None and "<svg" in card.group(0)
        assert '<span class="verdict drift">drift</span>' in card.group(0)
    assert "DATASET DRIFT" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # self-contained
    summary = decode((data / "termination").read_text())
    assert (
        isinstance(summary, DriftSummary) and summary.report_uri == f"file://{data}/remote/run-1/report.html"
    )


def test_config_overrides_tests_and_share(data: Path) -> None:
    config = data / "config.yaml"
    config.write_text("driftShare: 1.0\ntests:\n  - {feature: '*', test: psi, threshold: 10}\n")
    assert check(data, "--config", f"@{config}", "--output-dir", str(data / "out")) == 0
    result = json.loads((data / "out" / "result.json").read_text())
    assert {f["test"] for f in result["features"]} == {"psi"}
    assert result["drifted_features"] == 0 and result["dataset_drift"] is False


def test_csv_input_and_folder_of_files(data: Path) -> None:
    folder = data / "current"
    folder.mkdir()
    pacsv.write_csv(mixed_table(700, seed=4, shift=1.0), folder / "part-0.csv")
    pacsv.write_csv(mixed_table(700, seed=5, shift=1.0), folder / "part-1.csv")
    assert check(data, "--output-dir", str(data / "out"), current="current") == 0
    result = json.loads((data / "out" / "result.json").read_text())
    assert result["current"]["rows"] == 1400 and result["drifted_features"] == 5


def test_payload_log_window(data: Path) -> None:
    now = datetime.now(UTC)
    sink = data / "sink"
    shifted = mixed_table(400, seed=6, shift=1.0)
    write_payload_file(sink, "iris", shifted, [now - timedelta(minutes=30)] * 400)
    write_payload_file(sink, "iris", mixed_table(400, seed=7), [now - timedelta(hours=30)] * 400)
    args = ["check", "--reference", str(data / "ref.parquet"), "--payload-log", str(sink), "--model", "iris"]
    common = ["--quiet", "--termination-log", str(data / "t"), "--output-dir", str(data / "out")]
    assert main([*args, "--window-duration", "1h", *common]) == 0
    result = json.loads((data / "out" / "result.json").read_text())
    assert (result["current"]["rows"], result["drifted_features"]) == (400, 5)
    assert main([*args, "--last-rows", "600", *common]) == 0
    assert json.loads((data / "out" / "result.json").read_text())["current"]["rows"] == 600
    assert main([*args, "--window-duration", "5m", *common]) == 4


def test_profile_command(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = data / "cache"
    assert (
        main(["profile", "--reference", str(data / "ref.parquet"), "--profile-cache", str(cache), "-q"]) == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert Path(printed["profile"]).exists() and printed["profile"].startswith(str(cache))
    assert check(data, "--profile-cache", str(cache), "--output-dir", str(data / "out")) == 0
    assert json.loads((data / "out" / "result.json").read_text())["reference"]["profile"]["cached"] is True


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (["--config", '{"tests": [{"feature": "age", "test": "magic"}]}'], 2, "bad config: tests.0.test"),
        (["--config", "{not json"], 2, "config is neither JSON nor YAML"),
        (["--config", "@/nonexistent/config.json"], 2, "cannot read config file"),
        (["--config", '{"tests": [{"feature": "city", "test": "ks"}]}'], 2, "needs a numeric feature"),
        (["--workers", "0"], 2, "--workers"),
        (["--model", "m"], 2, "go with --payload-log"),
        (["--config", '{"features": ["height"]}'], 5, "not a column of the reference"),
    ],
)
def test_usage_and_config_errors(
    data: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], code: int, message: str
) -> None:
    assert check(data, *arguments) == code
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1


def test_input_errors(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check(data, current="missing.parquet") == 3
    (data / "garbage.parquet").write_bytes(b"this is not parquet")
    assert check(data, current="garbage.parquet") == 3
    pq.write_table(mixed_table(0, seed=8), data / "empty.parquet")
    assert check(data, current="empty.parquet") == 4
    pq.write_table(
        mixed_table(10, seed=9).drop_columns(["age"]).append_column("age", pa.array(["x"] * 10)),
        data / "bad.parquet",
    )
    assert check(data, current="bad.parquet") == 5
    pq.write_table(pa.table({"unrelated": [1, 2]}), data / "unrelated.parquet")
    assert check(data, current="unrelated.parquet") == 5
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 5 and all(line.startswith("kubeloop drift: error: ") for line in errors)
    assert (data / "termination").read_text().startswith("drift check failed: ")


def test_argument_errors_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--reference", "x"]) == 2
    assert main(["frobnicate"]) == 2
    assert main([]) == 2
    assert main(["check", "--help"]) == 0
    assert "5  schema mismatch" in capsys.readouterr().out


def test_object_store_uris_through_fsspec() -> None:
    """Every URI through fsspec (memory:// here, s3:// in a cluster): data, profile and report."""
    import fsspec

    memory = fsspec.filesystem("memory")
    for name, table in (
        ("ref.parquet", mixed_table(3000, seed=10)),
        ("cur.parquet", mixed_table(2000, seed=11)),
    ):
        with memory.open(f"/bench/{name}", "wb") as handle:
            pq.write_table(table, handle)
    try:
        arguments = [
            "check",
            "--reference",
            "memory://bench/ref.parquet",
            "--current",
            "memory://bench/cur.parquet",
        ]
        arguments += ["--profile-cache", "memory://cache/", "--report-uri", "memory://reports/run-1", "-q"]
        assert main([*arguments, "--termination-log", "/nonexistent/termination-log"]) == 0
        result = json.loads(memory.cat("/reports/run-1/result.json"))
        assert result["tested_features"] == 5 and result["drifted_features"] == 0
        assert memory.cat("/reports/run-1/report.html").count(b"<svg") == 5
        assert len(memory.ls("/cache")) == 1
        assert main([*arguments, "--termination-log", "/nonexistent/termination-log"]) == 0
        assert json.loads(memory.cat("/reports/run-1/result.json"))["reference"]["profile"]["cached"] is True
    finally:
        for folder in ("/bench", "/cache", "/reports"):
            if memory.exists(folder):
                memory.rm(folder, recursive=True)


def test_unwritable_report_destination_exits_6_but_leaves_the_verdict(data: Path) -> None:
    blocker = data / "blocker"
    blocker.write_text("a file where a folder should be")
    assert check(data, "--output-dir", str(blocker / "out")) == 6
    summary = decode((data / "termination").read_text())
    assert isinstance(summary, DriftSummary) and summary.report_uri is None and summary.dataset_drift
