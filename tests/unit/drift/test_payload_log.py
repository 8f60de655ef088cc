"""Reading the current window from the payload log: by duration and by the newest N rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from kubeloop_drift.errors import EmptyInputError, UsageError
from kubeloop_drift.payload_log import parse_duration, payload_window

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def write(sink: Path, model: str, hours_ago: list[float], start_value: int) -> None:
    from .builders import write_payload_file

    stamps = [NOW - timedelta(hours=h) for h in hours_ago]
    values = list(range(start_value, start_value + len(stamps)))
    write_payload_file(sink, model, pa.table({"x": [float(v) for v in values]}), stamps)


@pytest.fixture
def sink(tmp_path: Path) -> Path:
    """Three days of payloads for model m; values count up with time; two writers interleave."""
    write(tmp_path, "m", [50, 49, 48], start_value=0)  # two days ago
    write(tmp_path, "m", [30, 29], start_value=3)  # yesterday
    write(tmp_path, "m", [5, 3, 1], start_value=5)  # today, replica A
    write(tmp_path, "m", [4, 2, 0.5], start_value=8)  # today, replica B
    write(tmp_path, "other", [1], start_value=100)
    (tmp_path / "m" / "dt=2026-03-10" / "1773100000000-deadbeef.parquet.tmp").write_bytes(b"partial")
    (tmp_path / "m" / "_SUCCESS").write_text("")
    return tmp_path


def values(table: pa.Table) -> list[float]:
    return sorted(table.column("x").to_pylist())


def test_duration_window_keeps_rows_since_the_start(sink: Path) -> None:
    window = payload_window(str(sink), "m", duration="6h", now=NOW)
    assert values(window.read(["x"])) == [5, 6, 7, 8, 9, 10]
    window = payload_window(str(sink), "m", duration="31h", now=NOW)
    assert values(window.read(["x"])) == [3, 4, 5, 6, 7, 8, 9, 10]
    window = payload_window(f"file://{sink}", "m", duration="7d", now=NOW)
    table = window.read(["x"])
    assert values(table) == list(range(11))
    assert window.description["rows"] == 11 and window.description["window"]["duration"] == "7d"


def test_last_rows_are_the_newest_across_replicas(sink: Path) -> None:
    assert values(payload_window(str(sink), "m", last_rows=3).read(["x"])) == [7, 9, 10]  # 1h, 2h, 0.5h ago
    assert values(payload_window(str(sink), "m", last_rows=7).read(["x"])) == [4, 5, 6, 7, 8, 9, 10]
    assert values(payload_window(str(sink), "m", last_rows=1000).read(["x"])) == list(range(11))


def test_windows_read_only_the_files_they_need(sink: Path) -> None:
    window = payload_window(str(sink), "m", last_rows=3)
    assert {f.day.isoformat() for f in window.files} == {"2026-03-10"}
    window = payload_window(str(sink), "m", duration="6h", now=NOW)  # yesterday's partition is in the slack
    assert {f.day.isoformat() for f in window.files} == {"2026-03-10"}


def test_empty_window_and_missing_model(sink: Path) -> None:
    with pytest.raises(EmptyInputError, match="no files"):  # today's files end 30 minutes ago
        payload_window(str(sink), "m", duration="10m", now=NOW)
    with pytest.raises(EmptyInputError, match="no payload log"):
        payload_window(str(sink), "nobody", duration="1h", now=NOW)
    with pytest.raises(EmptyInputError, match="no files"):
        payload_window(str(sink), "m", duration="1h", now=NOW + timedelta(days=30))


def test_durations() -> None:
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("24h") == timedelta(days=1)
    assert parse_duration("7d") == timedelta(days=7)
    for bad in ("0h", "24", "1w", "-1h"):
        with pytest.raises(UsageError):
            parse_duration(bad)


def test_exactly_one_window_kind(sink: Path) -> None:
    with pytest.raises(UsageError):
        payload_window(str(sink), "m")
    with pytest.raises(UsageError):
        payload_window(str(sink), "m", duration="1h", last_rows=5)


def test_files_of_another_schema_contribute_nulls(tmp_path: Path) -> None:
    """A feature added by a newer model version is missing (null) in older files, not an error."""
    from .builders import write_payload_file

    write_payload_file(tmp_path, "m", pa.table({"x": [1.0, 2.0]}), [NOW - timedelta(hours=2)] * 2)
    write_payload_file(tmp_path, "m", pa.table({"x": [3.0], "y": ["new"]}), [NOW - timedelta(hours=1)])
    table = payload_window(str(tmp_path), "m", duration="3h", now=NOW).read(["x", "y"])
    assert sorted(table.column("x").to_pylist()) == [1.0, 2.0, 3.0]
    assert table.column("y").null_count == 2
