"""The champion as the servers load it: the registry URI resolved to a version, its ``model.onnx``.

Resolution is `kubeloop.registry.resolve_registered_model`, the one the inference server uses,
so the gate scores the very file a ModelDeployment on that URI serves. A registered model, alias or
version that does not exist yet means there is no champion (the first model passes).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow.artifacts
from mlflow.exceptions import MlflowException

from kubeloop.contracts.registry_uri import parse_registry_uri
from kubeloop.mlflow_client import connect
from kubeloop.registry import RegisteredModelVersion, resolve_registered_model
from kubeloop_trainer.evaluation import NotComparableError
from kubeloop_trainer.tracking import ONNX_FILE

NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"


def champion_exists(uri: str, tracking_uri: str) -> bool:
    """Whether ``uri`` names an existing registered model and alias (or version)."""
    reference = parse_registry_uri(uri)
    client = connect(tracking_uri)
    try:
        model = client.get_registered_model(reference.name)
        if reference.alias is not None:
            return reference.alias in (model.aliases or {})
        if reference.pinned:
            client.get_model_version(reference.name, str(reference.version))
    except MlflowException as error:
        if error.error_code == NOT_FOUND:
            return False
        raise
    return True


def onnx_in(folder: Path) -> bytes:
    """``model.onnx`` in a downloaded model folder (the server's rule: by name, else the only .onnx)."""
    named = sorted(folder.rglob(ONNX_FILE))
    if named:
        return named[0].read_bytes()
    others = sorted(folder.rglob("*.onnx"))
    if len(others) == 1:
        return others[0].read_bytes()
    raise NotComparableError(f"the champion holds no {ONNX_FILE} (and {len(others)} other .onnx files)")


def resolve_champion(uri: str, tracking_uri: str) -> RegisteredModelVersion | None:
    """The version ``uri`` means now; None when there is no champion yet."""
    if not champion_exists(uri, tracking_uri):
        return None
    return resolve_registered_model(uri, tracking_uri)


def download_champion(registered: RegisteredModelVersion, tracking_uri: str) -> bytes:
    """The champion's ONNX bytes; NotComparable when they cannot be had (the challenger then fails)."""
    try:
        with tempfile.TemporaryDirectory(prefix="kubeloop-champion-") as scratch:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=registered.location, dst_path=scratch, tracking_uri=tracking_uri
                )
            )
            return local.read_bytes() if local.is_file() else onnx_in(local)
    except NotComparableError:
        raise
    except Exception as error:
        raise NotComparableError(
            f"cannot download it from {registered.location}: {type(error).__name__}: {error}"
        ) from error
