"""Offline features of a Feast feature service, joined point-in-time onto an entity file.

Each entity row gets the feature values valid at its own timestamp (Feast's
``get_historical_features``: the latest value at or before it, within the feature view's ttl), so
no row sees the future. The reference: the feature service, the registry's last update, the
entity file's sha256 and the joined frame's sha256 (rows in a canonical order).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import pyarrow as pa
from feast import FeatureStore

from kubeloop.api.data_sources import DataReference, FeastSource
from kubeloop.contracts.datasets import DataFormat
from kubeloop_trainer.dataset import DatasetFingerprint, LoadedDataset, load_dataset
from kubeloop_trainer.errors import BadDataError
from kubeloop_trainer.sources import Source


def frame_sha256(frame: pd.DataFrame) -> str:
    """sha256 over the column names and a hash of every row, in the frame's order."""
    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def canonical(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The joined rows in one order (the offline store returns them in any)."""
    try:
        ordered = frame.sort_values(list(frame.columns), kind="stable")
    except TypeError:  # a column of unorderable values (lists): the timestamp and keys decide
        ordered = frame.sort_values(keys, kind="stable")
    return ordered.reset_index(drop=True)


def registry_updated(store: FeatureStore) -> str:
    stamp = store.registry.proto().last_updated
    return str(stamp.ToDatetime().isoformat()) + "Z"


def historical(store: FeatureStore, source: FeastSource, entities: pd.DataFrame) -> pd.DataFrame:
    try:
        service = store.get_feature_service(source.feature_service)
        return store.get_historical_features(entity_df=entities, features=service).to_df()
    except Exception as error:  # unknown service, unreadable offline store, bad entity frame
        problem = f"{type(error).__name__}: {error}"
        raise BadDataError(
            f"cannot get features of {source.feature_service} from {source.repo}: {problem}"
        ) from error


def entity_frame(source: FeastSource, declared: DataFormat | None) -> tuple[pd.DataFrame, str]:
    loaded = load_dataset(source.entities, declared)
    frame: pd.DataFrame = loaded.table.to_pandas()
    column = source.timestamp_column
    if column not in frame.columns:
        raise BadDataError(f"entity file {source.entities} has no timestamp column {column!r}")
    frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame, loaded.fingerprint.sha256


def load_feast(source: FeastSource, declared: DataFormat | None) -> Source:
    entities, entities_sha256 = entity_frame(source, declared)
    try:
        store = FeatureStore(repo_path=source.repo)
        updated = registry_updated(store)
        join_keys = [entity.join_key for entity in store.list_entities()]
    except Exception as error:  # no feature_store.yaml, an unreadable registry
        raise BadDataError(f"cannot open the Feast repository {source.repo}: {error}") from error
    keys = [source.timestamp_column, *(key for key in join_keys if key in entities.columns)]
    joined = canonical(historical(store, source, entities), keys)
    sha256 = frame_sha256(joined)
    table: Any = pa.Table.from_pandas(joined.drop(columns=keys), preserve_index=False)
    location = f"feast:{source.feature_service}@{source.repo}"
    loaded = LoadedDataset(
        table=table, fingerprint=DatasetFingerprint(uri=location, sha256=sha256, rows=len(joined), files=1)
    )
    reference = DataReference(
        kind="feast",
        requested=f"feast {source.repo} {source.feature_service} on {source.entities}",
        revision=updated,
        sha256=sha256,
        rows=len(joined),
        details={"featureService": source.feature_service, "entitiesSha256": entities_sha256},
    )
    return Source(loaded, reference)
