"""Versioned-data benchmark: what resolving and reading a DVC-tracked dataset costs kubeloop's trainer,
against DVC's own ``dvc.api.read_bytes`` of the same path at the same revision, and against reading the
same file by plain path (no versioning at all), side by side, as JSON.

    .venv/bin/python -m bench.data_sources [--rows 200000] [--repeats 3]

One git repository with the Parquet file added to DVC and pushed to a local DVC remote, cloned bare: every
reader starts from the git URL (a fresh clone, the bytes from the DVC remote), as a pod does. Each
measurement is one fresh subprocess, median of the repeats: the read alone (resolve, clone, fetch,
parse; imports done before) and the whole process (interpreter start and imports included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("", "trainer")),
    "DVC_NO_ANALYTICS": "1",
}

KUBELOOP = """
import time
from kubeloop.api.training import Dataset
from kubeloop_trainer.sources import load_source
import dvc.api
start = time.perf_counter()
load_source(Dataset.model_validate({{"dvc": {{"repo": "{url}", "path": "{path}", "rev": "main"}}}}))
print(time.perf_counter() - start)
"""
# clean_repos: DVC's clean-up of its clones, as the trainer does; without it, about one process in five
# aborted at exit here ("terminate called without an active exception", DVC's threads and pyarrow's)
DVC_API = """
import io, time
import dvc.api
from dvc.repo.open_repo import clean_repos
import pyarrow.parquet as pq
start = time.perf_counter()
pq.read_table(io.BytesIO(dvc.api.read("{path}", repo="{url}", rev="main", mode="rb")))
clean_repos()
print(time.perf_counter() - start)
"""
PLAIN = """
import time
from kubeloop_trainer.sources import load_source
from kubeloop.api.training import Dataset
start = time.perf_counter()
load_source(Dataset(uri="{file}"))
print(time.perf_counter() - start)
"""


def timed(code: str, repeats: int) -> dict[str, float]:
    """The process's wall time, and the read's alone (imports done: what the versioning costs)."""
    process, read = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code], env=ENV, check=True, capture_output=True, text=True
        )
        process.append(time.perf_counter() - start)
        read.append(float(done.stdout.strip().splitlines()[-1]))
    return {
        "process_median_s": round(statistics.median(process), 3),
        "read_median_s": round(statistics.median(read), 3),
    }


def make_repo(root: Path, rows: int) -> tuple[str, Path]:
    from tests.fixtures.data_repos import DvcRepo

    rng = np.random.default_rng(0)
    columns = {f"f{i}": rng.normal(size=rows).astype(np.float32) for i in range(10)}
    table = pa.table({**columns, "label": rng.integers(0, 2, size=rows)})
    repo = DvcRepo.create(root)
    repo.commit(table, "data")
    return repo.url, repo.work / repo.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-data-") as scratch:
        url, file = make_repo(Path(scratch), args.rows)
        path = "data/train.parquet"
        kubeloop = timed(KUBELOOP.format(url=url, path=path), args.repeats)
        dvc_api = timed(DVC_API.format(url=url, path=path), args.repeats)
        plain = timed(PLAIN.format(file=file), args.repeats)
        size = file.stat().st_size
    print(
        json.dumps(
            {
                "bench": "data_sources",
                "rows": args.rows,
                "bytes": size,
                "repeats": args.repeats,
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "kubeloop_dvc_source": kubeloop,
                "peer_dvc_api_read": dvc_api,
                "plain_path": plain,
                "read_ratio_kubeloop_vs_dvc_api": round(
                    kubeloop["read_median_s"] / dvc_api["read_median_s"], 3
                ),
                "read_ratio_kubeloop_dvc_vs_plain_path": round(
                    kubeloop["read_median_s"] / plain["read_median_s"], 3
                ),
                "process_ratio_kubeloop_vs_dvc_api": round(
                    kubeloop["process_median_s"] / dvc_api["process_median_s"], 3
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
