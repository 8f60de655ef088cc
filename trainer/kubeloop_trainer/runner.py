"""One training run from spec to registered model: the order of things, and what fails how.

load + split data (and the challenger gate's evaluation data) -> train (plain, fine-tune or
tuning) -> test metrics -> global importance (if asked) -> export to ONNX -> parity check -> log
model -> fairness gate -> challenger gate -> register (only if the fairness gate passes; the alias
only if the challenger gate passes too) -> summary. Every worker trains; only the chief (rank 0)
records, exports and registers. Any failure ends as a summary with a ``failure_reason``.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kubeloop.api.data_sources import DataReference
from kubeloop.api.processes import TORCH_ALGORITHMS
from kubeloop.api.summaries import TrainingSummary
from kubeloop.api.training import RegisteredModel, TrainingJobSpec, Trial
from kubeloop_trainer.challenge import GateReport, run_gate
from kubeloop_trainer.checkpoints import run_checkpoints
from kubeloop_trainer.context import RunContext
from kubeloop_trainer.dataset import DatasetFingerprint
from kubeloop_trainer.errors import TrainerError
from kubeloop_trainer.evaluation import EvaluationData, load_evaluation
from kubeloop_trainer.fairness_run import fairness_params, fairness_tags, run_fairness
from kubeloop_trainer.features import Features, build_features
from kubeloop_trainer.importance import record_importance
from kubeloop_trainer.lineage import record_reference, run_provenance
from kubeloop_trainer.model import Recipe, TrainedModel
from kubeloop_trainer.onnx_export import check_parity, export_model, model_metadata, require_parity
from kubeloop_trainer.progress import Progress, format_metrics
from kubeloop_trainer.progress_report import plan_for
from kubeloop_trainer.provenance import code_version, environment
from kubeloop_trainer.recording import Recorder, open_tracker
from kubeloop_trainer.sources import load_source
from kubeloop_trainer.splits import SplitData, split_rows, take
from kubeloop_trainer.stopping import raise_if_stopped
from kubeloop_trainer.tags import PARITY_TAG, TRIALS_TAG
from kubeloop_trainer.topology import Topology
from kubeloop_trainer.training import attempt, scores
from kubeloop_trainer.tuning import tune


@dataclass(frozen=True)
class Prepared:
    features: Features
    data: SplitData
    fingerprint: DatasetFingerprint
    reference: DataReference  # what spec.dataset resolved to
    recipe: Recipe
    evaluation: EvaluationData | None = None  # the challenger gate's data


@dataclass(frozen=True)
class Outcome:
    model: TrainedModel
    metrics: dict[str, float]
    best_trial: Trial | None = None


def prepare(spec: TrainingJobSpec) -> Prepared:
    assert spec.dataset is not None  # checked by context.check_supported
    builtin = spec.builtin
    source = load_source(spec.dataset)
    loaded = source.loaded
    sensitive = spec.fairness.sensitive_attributes if spec.fairness is not None else []
    features = build_features(loaded.table, spec.dataset.target_column, builtin.task, sensitive)
    classification = builtin.task == "classification"
    split = split_rows(
        len(features.y),
        features.y if classification else None,
        builtin.validation_fraction,
        builtin.test_fraction,
        builtin.seed,
    )
    recipe = Recipe(
        algorithm=builtin.algorithm,
        task=builtin.task,
        n_features=features.x.shape[1],
        n_classes=features.n_classes,
        hyperparameters=dict(spec.hyperparameters),
        seed=builtin.seed,
        class_balancing=builtin.class_balancing,
        early_stopping_patience=builtin.early_stopping_patience,
    )
    evaluation = None
    if spec.challenge is not None:  # read before training: bad evaluation data fails fast
        evaluation = load_evaluation(
            spec.challenge.dataset, spec.dataset.target_column, builtin.task, frozenset(sensitive)
        )
    return Prepared(
        features=features,
        data=take(features, split),
        fingerprint=loaded.fingerprint,
        reference=source.reference,
        recipe=recipe,
        evaluation=evaluation,
    )


def run_params(spec: TrainingJobSpec, prepared: Prepared) -> dict[str, object]:
    builtin, fingerprint = spec.builtin, prepared.fingerprint
    params: dict[str, object] = {
        "algorithm": builtin.algorithm,
        "task": builtin.task,
        "seed": builtin.seed,
        "validation_fraction": builtin.validation_fraction,
        "test_fraction": builtin.test_fraction,
        "cross_validation_folds": builtin.cross_validation_folds,
        "class_balancing": builtin.class_balancing,
        "early_stopping_patience": builtin.early_stopping_patience,
        "workers": spec.workers,
        "dataset.uri": fingerprint.uri,
        "dataset.sha256": fingerprint.sha256,
        "dataset.rows": fingerprint.rows,
        "dataset.files": fingerprint.files,
        "dataset.features": len(prepared.features.feature_names),
        "dataset.classes": json.dumps(prepared.features.classes),
        "split.rows": f"{len(prepared.data.train)}/{len(prepared.data.validation)}/{len(prepared.data.test)}",
    }
    if builtin.algorithm in TORCH_ALGORITHMS:
        import torch  # a scikit-learn run need not load it

        params["torch.threads"] = torch.get_num_threads()  # OMP_NUM_THREADS: the pod's CPU limit
    if spec.fine_tune is not None:
        params["fine_tune.base_model_uri"] = spec.fine_tune.base_model_uri
        params["fine_tune.schedule"] = spec.fine_tune.model_dump_json(by_alias=True)
    if spec.challenge is not None and prepared.evaluation is not None:
        evaluation = prepared.evaluation.fingerprint
        params |= {
            "challenge.champion": spec.challenge.champion,
            "challenge.metric": spec.challenge.metric,
            "challenge.margin": spec.challenge.margin,
            "challenge.dataset.uri": evaluation.uri,
            "challenge.dataset.sha256": evaluation.sha256,
            "challenge.dataset.rows": evaluation.rows,
        }
    if spec.fairness is not None:
        params |= fairness_params(spec.fairness)
    if spec.tuning is not None:
        params["tuning"] = spec.tuning.model_dump_json(by_alias=True, exclude={"search_space"})
        params["tuning.search_space"] = json.dumps({k: v.wire() for k, v in spec.tuning.search_space.items()})
    return params


def train(context: RunContext, prepared: Prepared, recorder: Recorder) -> Outcome:
    spec, data, recipe = context.spec, prepared.data, prepared.recipe
    folds = spec.builtin.cross_validation_folds
    mode = "tuning" if spec.tuning else "fine-tuning" if spec.fine_tune else "training"
    workers = f" on {context.topology.world_size} workers" if context.topology.distributed else ""
    recorder.progress.say(f"{mode} {recipe.algorithm} on {len(data.train)} rows{workers}")
    if spec.tuning is not None:
        result = tune(spec.tuning, recipe, data, folds, recorder)
        recorder.tags({TRIALS_TAG: f"{result.completed} completed, {result.pruned} pruned"})
        return Outcome(result.best.model, result.best.metrics, result.best_trial)
    checkpoints = run_checkpoints(context, recorder)  # a replaced pod or a restarted gang resumes
    if spec.fine_tune is not None:
        from kubeloop_trainer.finetune import fetch_checkpoint, fine_tune_torch  # needs torch

        tracking_uri = recorder.tracker.tracking_uri if recorder.tracker else context.tracking_uri
        checkpoint = fetch_checkpoint(spec.fine_tune.base_model_uri, tracking_uri)
        model = fine_tune_torch(
            recipe,
            spec.fine_tune,
            checkpoint,
            data.train,
            data.validation,
            topology=context.topology,
            on_epoch=recorder.epoch,
            checkpoints=checkpoints,
        )
        return Outcome(model, scores(model, data.validation, recipe.task, "val"))
    single = attempt(
        recipe, data, folds, topology=context.topology, on_epoch=recorder.epoch, checkpoints=checkpoints
    )
    return Outcome(single.model, single.metrics)


def publish(context: RunContext, prepared: Prepared, outcome: Outcome, recorder: Recorder) -> TrainingSummary:
    """Chief only: test metrics, ONNX export + parity check, artifacts, registration."""
    spec, recipe, test = context.spec, prepared.recipe, prepared.data.test
    metrics = {**outcome.metrics, **scores(outcome.model, test, recipe.task, "test")}
    recorder.params({f"model.{k}": v for k, v in outcome.model.effective_params().items()})
    recorder.metrics(metrics)
    recorder.progress.say(f"final {format_metrics(metrics)}")
    if spec.importance is not None:
        data, features = prepared.data, prepared.features
        record_importance(outcome.model, spec.importance, data, features, recipe.task, recipe.seed, recorder)
    metadata = model_metadata(
        prepared.features.feature_names, prepared.features.classes, recipe.task, recipe.algorithm
    )
    onnx_bytes = export_model(outcome.model, metadata)
    parity = check_parity(onnx_bytes, outcome.model, test.x, recipe.task)
    recorder.metrics({"onnx_parity_max_abs_diff": parity.max_abs_diff})
    recorder.tags({PARITY_TAG: parity.describe()})
    recorder.progress.say(parity.describe())
    require_parity(parity)
    raise_if_stopped()
    checkpoint = outcome.model.checkpoint()
    write_outputs(context, onnx_bytes, checkpoint)
    source = recorder.log_model(onnx_bytes, checkpoint)
    fairness = (
        run_fairness(spec.fairness, onnx_bytes, test, prepared.features.classes, recorder)
        if spec.fairness is not None
        else None
    )
    raise_if_stopped()
    gate = challenge(context, prepared, onnx_bytes, recorder)
    registered = None
    registration = spec.registration
    if registration is not None and fairness is not None and not fairness.passed:
        recorder.progress.say(f"not registering {registration.model_name}: fairness gate {fairness.outcome}")
    elif registration is not None and source is not None:
        alias = registration.alias if gate is None or gate.result.passed else None
        tags = {**(gate.tags if gate is not None else {}), **fairness_tags(fairness)}
        version = recorder.register(source, registration.model_name, alias, tags)
        registered = RegisteredModel(name=registration.model_name, version=version or "", alias=alias)
        recorder.progress.say(
            f"registered {registered.name} version {registered.version} "
            + (f"alias {alias}" if alias else "without alias")
        )
    return TrainingSummary(
        mlflow_run_id=recorder.run_id,
        mlflow_run_url=recorder.run_url,
        metrics=metrics,
        best_trial=outcome.best_trial,
        registered_model=registered,
        challenge=gate.result if gate is not None else None,
        fairness=fairness,
        provenance=run_provenance(spec, prepared.reference),
        message=parity.describe(),
    )


def challenge(
    context: RunContext, prepared: Prepared, onnx_bytes: bytes, recorder: Recorder
) -> GateReport | None:
    """The champion/challenger gate (when the spec asks for one), recorded on the run."""
    spec_challenge, evaluation = context.spec.challenge, prepared.evaluation
    if spec_challenge is None or evaluation is None:
        return None
    tracking_uri = recorder.tracker.tracking_uri if recorder.tracker else context.tracking_uri
    if tracking_uri is None:  # the chief always has a tracker; this keeps the types honest
        return None
    recorder.progress.say(
        f"challenging {spec_challenge.champion} on {evaluation.rows} rows of {evaluation.fingerprint.uri}"
    )
    gate = run_gate(spec_challenge, evaluation, onnx_bytes, tracking_uri)
    recorder.metrics(gate.metrics)
    recorder.tags(gate.tags)
    recorder.progress.say(f"challenger gate {gate.result.outcome}: {gate.result.message}")
    raise_if_stopped()
    return gate


def write_outputs(context: RunContext, onnx_bytes: bytes | None, checkpoint: bytes | None) -> None:
    """Copies of the model in ``--output-dir`` (per rank when distributed), for local runs."""
    if context.output_dir is None:
        return
    folder = context.output_dir
    if context.topology.distributed:
        folder = folder / f"rank-{context.topology.rank}"
    folder.mkdir(parents=True, exist_ok=True)
    if onnx_bytes is not None:
        (folder / "model.onnx").write_bytes(onnx_bytes)
    if checkpoint is not None:
        (folder / "checkpoint.pt").write_bytes(checkpoint)


def failure(reason: str, message: str, recorder: Recorder | None) -> TrainingSummary:
    if recorder is not None:
        try:
            recorder.finish("FAILED", reason, message)
        except Exception as error:  # the tracker may be what failed; the summary still goes out
            print(f"could not mark the MLflow run failed: {error}", file=sys.stderr)
    run_id = recorder.run_id if recorder else None
    run_url = recorder.run_url if recorder else None
    return TrainingSummary(
        mlflow_run_id=run_id, mlflow_run_url=run_url, failure_reason=reason, message=message
    )


@contextmanager
def process_group(topology: Topology) -> Iterator[None]:
    """Joined to the other workers (distributed runs only) for the duration of the block."""
    if not topology.distributed:
        yield
        return
    from kubeloop_trainer import distributed  # torch: only distributed runs need it

    distributed.join(topology)
    try:
        yield
    finally:
        distributed.leave()


def any_worker(flag: bool, topology: Topology) -> bool:
    """Whether ``flag`` holds on any worker; every worker must ask, in the same order."""
    if not topology.distributed:
        return flag
    from kubeloop_trainer.distributed import any_rank  # torch: only distributed runs need it

    return any_rank(flag, topology)


def run(context: RunContext) -> TrainingSummary:
    """Train as the spec says; never raises: failures come back as a summary with a reason."""
    topology = context.topology
    progress = Progress(enabled=topology.is_chief)
    recorder: Recorder | None = None
    try:
        with process_group(topology):
            recorder = Recorder(context, None, progress)
            return run_workers(context, recorder)
    except TrainerError as error:
        return failure(error.reason, str(error), recorder)
    except MemoryError as error:
        return failure("OOM", f"out of memory: {error}", recorder)
    except Exception as error:
        traceback.print_exc()
        return failure("Error", f"{type(error).__name__}: {error}", recorder)


def run_workers(context: RunContext, recorder: Recorder) -> TrainingSummary:
    topology = context.topology
    setup_error: Exception | None = None
    try:
        if topology.is_chief:
            recorder.tracker = open_tracker(context)
            recorder.start({**code_version(), **environment()})
        prepared = prepare(context.spec)
    except Exception as error:
        setup_error = error
    if any_worker(setup_error is not None, topology):  # all workers stop together, none hangs
        raise setup_error or TrainerError("another worker failed to set up; see its log")
    fingerprint = prepared.fingerprint
    recorder.progress.say(
        f"dataset {fingerprint.uri}: {fingerprint.rows} rows, sha256 {fingerprint.sha256[:12]}"
    )
    recorder.params(run_params(context.spec, prepared))
    recorder.report_progress(plan_for(context.spec, len(prepared.data.train), topology.world_size))
    record_reference(recorder, prepared.reference)
    raise_if_stopped()
    outcome = train(context, prepared, recorder)
    recorder.stage(outcome.metrics)
    raise_if_stopped()
    if not topology.is_chief:
        write_outputs(context, None, outcome.model.checkpoint())
        return TrainingSummary(metrics=outcome.metrics, message=f"worker {topology.rank} done")
    summary = publish(context, prepared, outcome, recorder)
    recorder.succeeded(summary.metrics)
    recorder.finish("FINISHED")
    return summary
