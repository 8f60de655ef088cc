"""The serving benchmark's ratios and goals, from the measured points (pure functions).

Each side's best variant by rps is compared per model x concurrency (kubeloop with or without its
batching, MLServer with or without its adaptive batching) and named in the row.
"""

from __future__ import annotations

import math
from typing import Any

Point = dict[str, Any]
VARIANTS = {
    "kubeloop": ("kubeloop", "kubeloop_batching", "kubeloop_native", "kubeloop_threaded"),
    "kserve": ("kserve",),
    "mlserver": ("mlserver", "mlserver_batching"),
    "http_floor": ("http_floor",),
}
PEERS = ("kserve", "mlserver")


def best(points: dict[str, Point], side: str) -> Point | None:
    """The variant of ``side`` with the highest rps among ``points`` (server -> point), if any."""
    measured = [points[label] for label in VARIANTS[side] if label in points]
    return max(measured, key=lambda point: point["rps"]) if measured else None


def ratio(ours: float, theirs: float) -> float | None:
    """ours / theirs to 3 decimals (so that 0.696 does not meet a goal of 0.7); None when either side
    measured nothing (0 or NaN)."""
    if not theirs or math.isnan(theirs) or math.isnan(ours):
        return None
    return round(ours / theirs, 3)


def _versus(ours: Point, theirs: Point) -> dict[str, Any]:
    figures = {"rps": "rps", "p50": "p50_ms", "p99": "p99_ms", "cpu_per_request": "cpu_us_per_request"}
    return {
        "against": theirs["server"],
        **{f"{name}_ratio": ratio(ours[key], theirs[key]) for name, key in figures.items()},
    }


def ratios(results: list[Point], floors: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """Per model x concurrency: kubeloop's best variant over each peer, the HTTP and compute floors."""
    cells: dict[tuple[str, int], dict[str, Point]] = {}
    for point in results:
        cells.setdefault((point["model"], point["concurrency"]), {})[point["server"]] = point
    rows = []
    for (model, concurrency), points in sorted(cells.items()):
        ours = best(points, "kubeloop")
        if ours is None:
            continue
        row: dict[str, Any] = {"model": model, "concurrency": concurrency, "kubeloop": ours["server"]}
        for side in (*PEERS, "http_floor"):
            theirs = best(points, side)
            if theirs is not None:
                row[f"over_{side}"] = _versus(ours, theirs)
        floor = floors.get(model)
        if floor:
            row["over_onnxruntime_in_process"] = {
                name.removesuffix("_rows_per_s"): ratio(ours["rps"], rows_per_s)
                for name, rows_per_s in floor.items()
            }
        answered = {label: point for label, point in points.items() if point["requests"]}
        row["lowest_p99_ms"] = {
            side: min(answered[label]["p99_ms"] for label in labels if label in answered)
            for side, labels in VARIANTS.items()
            if any(label in answered for label in labels)
        }
        rows.append(row)
    return rows


def goals(rows: list[dict[str, Any]]) -> dict[str, bool]:
    """Issue 15's targets: at the top concurrency, the CNN >= 2x each peer and >= 0.7x onnxruntime
    in-process at batch 1, the MLP >= 0.7x the HTTP floor; p99 no worse than either peer anywhere."""
    verdict: dict[str, bool] = {}
    top = max((row["concurrency"] for row in rows), default=0)
    for row in rows:
        if row["model"] == "cnn" and row["concurrency"] == top:
            for peer in PEERS:
                if f"over_{peer}" in row:
                    verdict[f"cnn c={top}: >=2x {peer} rps"] = _at_least(row[f"over_{peer}"]["rps_ratio"], 2)
            if "over_onnxruntime_in_process" in row:
                in_process = row["over_onnxruntime_in_process"]["batch1"]
                verdict[f"cnn c={top}: >=0.7x onnxruntime in-process (batch 1)"] = _at_least(in_process, 0.7)
        if row["model"] == "mlp" and row["concurrency"] == top and "over_http_floor" in row:
            verdict[f"mlp c={top}: >=0.7x the HTTP floor"] = _at_least(
                row["over_http_floor"]["rps_ratio"], 0.7
            )
        lowest = row["lowest_p99_ms"]
        for peer in PEERS:
            if peer in lowest and "kubeloop" in lowest:
                key = f"p99 no worse than {peer} anywhere (each side's lowest)"
                verdict[key] = verdict.get(key, True) and lowest["kubeloop"] <= lowest[peer]
    return verdict


def _at_least(value: float | None, bound: float) -> bool:
    return value is not None and value >= bound
