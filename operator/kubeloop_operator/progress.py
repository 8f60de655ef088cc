"""Read a TrainingJob's progress from MLflow's REST API (the operator does not depend on mlflow).

The trainer writes a `TrainingProgress` as JSON into the tag ``kubeloop.io/progress`` of the job's
parent run: the run in the job's experiment tagged ``kubeloop.io/uid`` = the TrainingJob's uid that is
not a child (trial) run. The newest such run is the current one (a changed spec starts a new run).
Fields the reader does not set itself (e.g. trial counts from parallel trial workers) are kept as
they are in the tag.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from kubeloop.api.progress import PROGRESS_TAG, TrainingProgress

UID_TAG = "kubeloop.io/uid"
PARENT_RUN_TAG = "mlflow.parentRunId"
TIMEOUT_SECONDS = 3.0

# (tracking URI, experiment name, TrainingJob uid) -> the latest report, None when there is none yet
ProgressReader = Callable[[str, str, str], TrainingProgress | None]


class ProgressError(Exception):
    """MLflow could not be asked, or answered something that is not a progress report."""


def _call(url: str, body: dict[str, Any] | None, timeout: float) -> dict[str, Any] | None:
    """One REST call; None for 404 (no such experiment)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload: dict[str, Any] = json.load(response)
            return payload
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise ProgressError(f"MLflow answered {error.code} to {url}") from error
    except Exception as error:  # refused, DNS, timeout, not JSON: all mean "no answer now"
        raise ProgressError(f"cannot reach MLflow at {url}: {type(error).__name__}: {error}") from error


def parent_run_filter(uid: str) -> str:
    """MLflow's search filter for the job's parent run (uids are [0-9a-f-]: nothing to escape)."""
    return f"tags.`{UID_TAG}` = '{uid}' AND tags.`{PARENT_RUN_TAG}` IS NULL"


def progress_of(run: dict[str, Any]) -> TrainingProgress | None:
    """The report in a run (a runs/search result), None when the run has none yet."""
    tags = {tag["key"]: tag.get("value", "") for tag in run.get("data", {}).get("tags") or []}
    if PROGRESS_TAG not in tags:
        return None
    try:
        return TrainingProgress.model_validate_json(tags[PROGRESS_TAG])
    except ValidationError as error:
        raise ProgressError(f"the {PROGRESS_TAG} tag is not a progress report: {error}") from error


def read_progress(
    tracking_uri: str, experiment: str, uid: str, timeout: float = TIMEOUT_SECONDS
) -> TrainingProgress | None:
    base = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow"
    query = urllib.parse.urlencode({"experiment_name": experiment})
    found = _call(f"{base}/experiments/get-by-name?{query}", None, timeout)
    if found is None:  # the trainer has not created the experiment yet
        return None
    search = {
        "experiment_ids": [found["experiment"]["experiment_id"]],
        "filter": parent_run_filter(uid),
        "order_by": ["attributes.start_time DESC"],
        "max_results": 1,
    }
    runs = (_call(f"{base}/runs/search", search, timeout) or {}).get("runs") or []
    return progress_of(runs[0]) if runs else None
