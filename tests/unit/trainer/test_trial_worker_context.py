"""What a trial-worker pod's environment makes of the run context, and what it refuses up front."""

from __future__ import annotations

import pytest

from kubeloop.contracts.trial_workers import TrialWorker, study_name
from kubeloop_trainer.context import context_from_env
from kubeloop_trainer.errors import InvalidSpecError, StudyStorageError
from kubeloop_trainer.study import lock_key, open_study
from tests.unit.trainer.builders import spec_json

pytestmark = pytest.mark.unit

URL = "postgresql+psycopg://u:p@db:5432/studies"
TUNING = {
    "maxTrials": 4,
    "parallelism": 2,
    "storage": {"secretRef": {"name": "db", "key": "url"}},
    "objective": {"metric": "val_f1"},
    "searchSpace": {"C": {"type": "float", "low": 0.1, "high": 1}},
}


def env(**extra: str) -> dict[str, str]:
    return {
        "KUBELOOP_TRAINING_SPEC": spec_json(
            "/d.parquet", builtin={"algorithm": "logistic_regression"}, tuning=TUNING
        ),
        "KUBELOOP_TRAININGJOB_UID": "1234",
        **extra,
    }


def test_a_trial_worker_knows_its_place_and_study() -> None:
    context = context_from_env(
        env=env(KUBELOOP_STUDY_STORAGE=URL, KUBELOOP_TRIAL_WORKER_INDEX="1", KUBELOOP_TRIAL_WORKERS="2")
    )
    assert context.trial_worker == TrialWorker(index=1, count=2, storage_url=URL)
    assert study_name(context.job.uid, context.run_name) == "kubeloop-1234"
    assert context_from_env(env=env()).trial_worker is None  # no storage URL: the single-pod search


def test_bad_worker_environment_or_no_tuning_is_refused() -> None:
    with pytest.raises(InvalidSpecError, match="does not fit"):
        context_from_env(
            env=env(KUBELOOP_STUDY_STORAGE=URL, KUBELOOP_TRIAL_WORKER_INDEX="2", KUBELOOP_TRIAL_WORKERS="2")
        )
    no_tuning = {"KUBELOOP_TRAINING_SPEC": spec_json("/d.parquet"), "KUBELOOP_STUDY_STORAGE": URL}
    with pytest.raises(InvalidSpecError, match=r"needs spec\.tuning"):
        context_from_env(env=no_tuning)


@pytest.mark.parametrize(
    ("url", "problem"), [("sqlite:///s.db", "must be PostgreSQL"), ("not a url", "not a SQLAlchemy URL")]
)
def test_only_postgresql_holds_a_shared_study(url: str, problem: str) -> None:
    with pytest.raises(StudyStorageError, match=problem):
        open_study(url, "s", "maximize", None, None, 1, lambda study, trial: None)


def test_lock_keys_are_stable_signed_64_bit() -> None:
    assert lock_key("kubeloop-1234") == lock_key("kubeloop-1234") != lock_key("kubeloop-1235")
    assert -(2**63) <= lock_key("kubeloop-1234") < 2**63
