"""status.provenance: what the trainer recorded (data reference, seed, code version) plus what only the
kubelet knows (the image digest the training pod ran) and who created the TrainingJob."""

from __future__ import annotations

from typing import Any

from kubeloop.api.data_sources import Provenance
from kubeloop.api.summaries import TrainingSummary

CHIEF_INDEX = "0"
TRAINER_CONTAINER = "trainer"


def chief_image(pods: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """(image, imageID) of the trainer container of the newest rank-0 pod that has started."""
    ordered = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True)
    for pod in ordered:
        annotations = pod["metadata"].get("annotations") or {}
        if annotations.get("batch.kubernetes.io/job-completion-index", CHIEF_INDEX) != CHIEF_INDEX:
            continue
        for status in pod.get("status", {}).get("containerStatuses") or []:
            if status.get("name") == TRAINER_CONTAINER and status.get("imageID"):
                return status.get("image"), status["imageID"]
    return None, None


def derive_provenance(
    summary: TrainingSummary | None, pods: list[dict[str, Any]], triggered_by: str | None
) -> Provenance | None:
    image, image_id = chief_image(pods)
    recorded = summary.provenance if summary is not None else None
    if recorded is None and image_id is None and triggered_by is None:
        return None
    base = recorded or Provenance()
    return base.model_copy(update={"image": image, "image_id": image_id, "triggered_by": triggered_by})
