"""Small data builders shared by the drift tests (tables, profiles, payload logs)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kubeloop_drift.profile import ProfileSettings, ReferenceProfile, is_feature_column, profile_column


def mixed_table(rows: int, seed: int, shift: float = 0.0) -> pa.Table:
    """Numeric (continuous, discrete, float32) and categorical features; ``shift`` moves every one."""
    rng = np.random.default_rng(seed)
    city_shares = np.array([0.4, 0.3, 0.2, 0.1]) if shift == 0 else np.array([0.1, 0.2, 0.3, 0.4])
    return pa.table(
        {
            "age": rng.normal(40 + 10 * shift, 10, rows),
            "income": rng.lognormal(10 + shift, 1, rows).astype(np.float32),
            "kids": rng.integers(0, 3 + int(2 * shift), rows),
            "city": rng.choice(["berlin", "paris", "rome", "oslo"], rows, p=city_shares),
            "member": rng.random(rows) < 0.5 + 0.3 * shift,
        }
    )


def profile_of(table: pa.Table, settings: ProfileSettings | None = None) -> ReferenceProfile:
    """A profile built in memory, as the check builds it from a file."""
    settings = settings or ProfileSettings()
    profiled = {name: profile_column(name, table.column(name), settings) for name in table.column_names}
    return ReferenceProfile(
        reference_uri="memory://reference",
        fingerprint="test",
        rows=table.num_rows,
        settings=settings,
        columns={k: v for k, v in profiled.items() if not isinstance(v, str) and is_feature_column(k)},
        unsupported={k: v for k, v in profiled.items() if isinstance(v, str) and is_feature_column(k)},
    )


def write_payload_file(sink: Path, model: str, features: pa.Table, timestamps: list[datetime]) -> Path:
    """One payload-log file as the inference server writes it."""
    millis = [int(t.timestamp() * 1000) for t in timestamps]
    newest = max(timestamps)
    folder = sink / model / f"dt={newest.astimezone(UTC).date().isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    rows = features.num_rows
    columns: dict[str, pa.Array] = {
        "_timestamp": pa.array(millis, type=pa.timestamp("ms", tz="UTC")),
        "_request_id": pa.array([secrets.token_hex(4) for _ in range(rows)]),
        "_model": pa.array([model] * rows),
        "_version": pa.array(["3"] * rows),
    }
    columns.update({name: features.column(name) for name in features.column_names})
    columns["_output.score"] = pa.array(np.zeros(rows))
    path = folder / f"{max(millis)}-{secrets.token_hex(4)}.parquet"
    pq.write_table(pa.table(columns), path)
    return path
