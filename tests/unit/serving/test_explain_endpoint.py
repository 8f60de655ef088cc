"""POST .../explain against a real uvicorn server running a model exported by the trainer."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from kubeloop_serving.settings import ServingSettings
from tests.unit.serving.conftest import RunningServer, serve_in_thread, wait_for
from tests.unit.serving.explain_models import FEATURES, ExportedModel, trained, write_background

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def boosted(tmp_path_factory: pytest.TempPathFactory) -> ExportedModel:
    return trained("gradient_boosting", "classification", n_estimators=20)


@pytest.fixture(scope="module")
def explaining(tmp_path_factory: pytest.TempPathFactory, boosted: ExportedModel) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("explain")
    background = write_background(directory / "reference.parquet", boosted.background)
    with serve_in_thread(
        boosted.save(directory, "gb"),
        model_name="gb",
        explain_enabled=True,
        explain_background_uri=str(background),
        explain_background_rows=40,
        explain_max_rows=5,
    ) as running:
        explainer_settled(running, "gb")
        yield running


def explainer_settled(server: RunningServer, model: str) -> None:
    """Wait until the explainer has been built or has failed (it loads after the model is ready)."""

    def settled() -> bool:
        answer = server.client.post(f"/v2/models/{model}/explain", json={"inputs": []})
        return "still loading" not in answer.text

    wait_for(settled, "the explainer to load")


def request(rows: np.ndarray[Any, Any], **parameters: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": "r1",
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": list(rows.shape), "data": rows.ravel().tolist()}
        ],
    }
    if parameters:
        document["parameters"] = parameters
    return document


def probabilities(server: RunningServer, rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    answer = server.infer("gb", request(rows)).json()
    (output,) = [o for o in answer["outputs"] if o["name"] == "probabilities"]
    return np.asarray(output["data"]).reshape(output["shape"])


def test_tree_explanation_adds_up_to_the_served_probability(
    explaining: RunningServer, boosted: ExportedModel
) -> None:
    rows = boosted.rows[:3]
    answer = explaining.client.post("/v2/models/gb/explain", json=request(rows))
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert document["id"] == "r1" and document["model_name"] == "gb" and document["model_version"] == "1"
    assert document["method"] == "tree" and document["output_space"] == "raw"
    assert document["post_transform"] == "LOGISTIC"
    assert document["feature_names"] == list(FEATURES) and document["output_names"] == ["0", "1"]
    values, base = np.asarray(document["values"]), np.asarray(document["base_values"])
    assert values.shape == (3, 5, 2) and base.shape == (3, 2)
    margin = base + values.sum(axis=1)
    np.testing.assert_allclose(1 / (1 + np.exp(-margin)), probabilities(explaining, rows), atol=1e-5)
    assert explaining.metric("kubeloop_serving_explanations_total", method="tree", code="200") >= 1
    assert explaining.metric("kubeloop_serving_explained_rows_total", method="tree") >= 3
    assert explaining.metric("kubeloop_serving_explain_duration_seconds_count", method="tree") >= 1


def test_versioned_path_and_kserve_v1(explaining: RunningServer, boosted: ExportedModel) -> None:
    rows = boosted.rows[:2]
    versioned = explaining.client.post("/v2/models/gb/versions/1/explain", json=request(rows))
    v1 = explaining.client.post("/v1/models/gb:explain", json={"instances": rows.tolist()})
    assert versioned.status_code == 200 and v1.status_code == 200, v1.text
    np.testing.assert_allclose(versioned.json()["values"], v1.json()["values"], atol=1e-6)
    assert "id" not in v1.json()


def test_permutation_and_lime_on_request(explaining: RunningServer, boosted: ExportedModel) -> None:
    rows = boosted.rows[:2]
    answer = explaining.client.post(
        "/v2/models/gb/explain", json=request(rows, method="permutation", budget=40)
    )
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert document["method"] == "permutation" and document["output"] == "probabilities"
    assert document["output_space"] == "output" and document["budget"] == 40
    values, base = np.asarray(document["values"]), np.asarray(document["base_values"])
    np.testing.assert_allclose(base + values.sum(axis=1), probabilities(explaining, rows), atol=1e-5)
    lime = explaining.client.post("/v2/models/gb/explain", json=request(rows[:1], method="lime", budget=200))
    assert lime.status_code == 200, lime.text
    assert np.asarray(lime.json()["values"]).shape == (1, 5, 2)
    assert explaining.metric("kubeloop_serving_explanations_total", method="lime", code="200") == 1


@pytest.mark.parametrize(
    ("path", "document", "status", "message"),
    [
        ("/v2/models/gb/explain", request(np.zeros((1, 5), np.float32), budget=0), 400, "parameters.budget"),
        (
            "/v2/models/gb/explain",
            request(np.zeros((1, 5), np.float32), budget="x"),
            400,
            "parameters.budget",
        ),
        (
            "/v2/models/gb/explain",
            request(np.zeros((1, 5), np.float32), method="kernel"),
            400,
            "parameters.method",
        ),
        (
            "/v2/models/gb/explain",
            request(np.zeros((1, 5), np.float32), method="permutation", budget=5),
            400,
            "at least 11",
        ),
        ("/v2/models/gb/explain", request(np.zeros((1, 4), np.float32)), 400, "must have shape"),
        ("/v2/models/gb/explain", request(np.zeros((6, 5), np.float32)), 400, "6 rows exceed the 5"),
        ("/v2/models/gb/explain", {"inputs": []}, 400, "non-empty list"),
        ("/v2/models/other/explain", request(np.zeros((1, 5), np.float32)), 404, "not served here"),
        ("/v2/models/gb/versions/9/explain", request(np.zeros((1, 5), np.float32)), 404, "no version"),
        ("/v1/models/gb:explain", {"instances": [[1, 2]]}, 400, "rows of 5 numbers"),
        ("/v1/models/gb:explain", {"rows": []}, 400, "instances"),
    ],
)
def test_bad_explain_requests(
    explaining: RunningServer, path: str, document: dict[str, Any], status: int, message: str
) -> None:
    answer = explaining.client.post(path, json=document)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_explain_is_post_only(explaining: RunningServer) -> None:
    assert explaining.client.get("/v2/models/gb/explain").status_code == 405


def test_explanations_are_off_by_default(tabular_server: RunningServer) -> None:
    for path in ("/v2/models/tabular/explain", "/v1/models/tabular:explain"):
        answer = tabular_server.client.post(path, json={"inputs": []})
        assert answer.status_code == 404
        assert "not enabled" in answer.json()["error"]


def test_unreadable_background_leaves_inference_serving(tmp_path: Path, boosted: ExportedModel) -> None:
    model = boosted.save(tmp_path, "gb")
    with serve_in_thread(
        model, model_name="gb", explain_enabled=True, explain_background_uri=str(tmp_path / "none.parquet")
    ) as running:
        explainer_settled(running, "gb")
        rows = boosted.rows[:1]
        assert running.infer("gb", request(rows)).status_code == 200
        answer = running.client.post("/v2/models/gb/explain", json=request(rows))
        assert answer.status_code == 503
        assert "cannot read background data" in answer.json()["error"]


def test_enabling_explanations_needs_background_data() -> None:
    with pytest.raises(ValidationError, match="EXPLAIN_BACKGROUND_URI"):
        ServingSettings(model_uri="/m.onnx", explain_enabled=True)


def test_inference_is_answered_while_an_explanation_runs(
    explaining: RunningServer, boosted: ExportedModel
) -> None:
    """The explanation runs in its own thread: infer requests complete while it is in flight."""
    heavy = request(boosted.rows[:5], method="lime", budget=100_000)
    with httpx.Client(base_url=explaining.url, timeout=300) as other, ThreadPoolExecutor(1) as pool:
        explanation = pool.submit(other.post, "/v2/models/gb/explain", json=heavy)
        answered_meanwhile = 0
        while not explanation.done() and answered_meanwhile < 5:
            assert explaining.infer("gb", request(boosted.rows[:1])).status_code == 200
            answered_meanwhile += 0 if explanation.done() else 1
        assert explanation.result().status_code == 200
    assert answered_meanwhile == 5


def test_refused_requests_are_counted(explaining: RunningServer) -> None:
    before = explaining.metric("kubeloop_serving_explanations_total", method="tree", code="400")
    assert explaining.client.post("/v2/models/gb/explain", content=b"{not json").status_code == 400
    after = explaining.metric("kubeloop_serving_explanations_total", method="tree", code="400")
    assert after == before + 1
