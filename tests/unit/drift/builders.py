"""Small data builders shared by the drift tests (tables, profiles, payload logs)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem

from kubeloop.contracts.payload_log import partition_dir
from kubeloop.contracts.payload_log import write_payload_file as write_payload_file_as_served
from kubeloop_drift.profile import ProfileSettings, ReferenceProfile, is_feature_column, profile_column
from kubeloop_serving.payload_table import FeatureNaming, PayloadRecord, payload_table


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
    """One payload-log file, written by the inference server's own code (one request per row)."""
    columns = {name: features.column(name).to_numpy(zero_copy_only=False) for name in features.column_names}
    millis = [int(t.timestamp() * 1000) for t in timestamps]
    records = [
        PayloadRecord(
            timestamp_ms=stamp,
            request_id=f"r{index}",
            version="3",
            inputs={name: values[index : index + 1] for name, values in columns.items()},
            outputs={"score": np.zeros(1)},
        )
        for index, stamp in enumerate(millis)
    ]
    table = payload_table(model, records, FeatureNaming())
    newest = max(millis)
    written = write_payload_file_as_served(
        LocalFileSystem(), partition_dir(str(sink), model, newest), table, newest
    )
    return Path(written)
