"""Request ids on every answer and payload-log row; sensitive attributes logged, never given to the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kubeloop_serving.attributes import parse_attributes
from kubeloop_serving.errors import InvalidRequestError
from tests.unit.serving.conftest import RunningServer, logged_rows, serve_in_thread, tabular_reference

pytestmark = pytest.mark.unit
ROWS = np.array([[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 2.0, 0.0], [3.0, 1.0, -2.0, 1.0]], np.float32)


def request(**extra: Any) -> dict[str, Any]:
    tensor = {"name": "x", "datatype": "FP32", "shape": list(ROWS.shape), "data": ROWS.tolist()}
    return {"inputs": [tensor], **extra}


def test_the_body_id_wins_then_the_header_then_a_generated_one(tabular_server: RunningServer) -> None:
    both = tabular_server.infer("tabular", request(id="body-1"), headers={"x-request-id": "header-1"})
    assert both.json()["id"] == "body-1" and both.headers["x-request-id"] == "body-1"
    header = tabular_server.infer("tabular", request(), headers={"x-request-id": "header-2"})
    assert header.json()["id"] == "header-2" and header.headers["x-request-id"] == "header-2"
    first, second = (tabular_server.infer("tabular", request()) for _ in range(2))
    assert first.json()["id"] == first.headers["x-request-id"]
    assert len(first.json()["id"]) == 32 and first.json()["id"] != second.json()["id"]


def test_an_overlong_request_id_is_refused(tabular_server: RunningServer) -> None:
    response = tabular_server.infer("tabular", request(), headers={"x-request-id": "x" * 257})
    assert response.status_code == 400
    assert "x-request-id is longer than 256" in response.json()["error"]


def test_attributes_are_logged_per_row_and_never_reach_the_model(tmp_path: Path, tabular_path: Path) -> None:
    sink = tmp_path / "payloads"
    attributes = {"sex": ["f", "m", None], "age_band": ["<30", 42, True]}
    with serve_in_thread(tabular_path, model_name="churn", payload_log_uri=str(sink)) as server:
        plain = server.infer("churn", request(id="plain"))
        tagged = server.infer(
            "churn", request(parameters={"attributes": attributes}), headers={"x-request-id": "tagged"}
        )
    assert tagged.status_code == 200, tagged.text
    assert tagged.json()["outputs"] == plain.json()["outputs"]
    label = next(o for o in tagged.json()["outputs"] if o["name"] == "label")
    assert label["data"] == tabular_reference(ROWS)[1].tolist()
    table = logged_rows(str(sink), "churn")
    assert table.column("_request_id").to_pylist() == ["plain"] * 3 + ["tagged"] * 3
    assert table.column("_row").to_pylist() == [0, 1, 2] * 2
    assert table.column("_attribute.sex").to_pylist() == [None, None, None, "f", "m", None]
    assert table.column("_attribute.age_band").to_pylist() == [None] * 3 + ["<30", "42", "true"]


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        (["f", "m", "f"], "parameters.attributes must be an object"),
        ({"sex": "f"}, "parameters.attributes.sex must be a list with one value per row (3 rows)"),
        ({"sex": ["f", "m"]}, "parameters.attributes.sex has 2 values but the request has 3 rows"),
        (
            {"sex": ["f", ["m"], "f"]},
            "parameters.attributes.sex[1] must be a string, number, boolean or null",
        ),
        ({"bad name": ["f", "m", "f"]}, "attribute name 'bad name' must be"),
    ],
)
def test_bad_attribute_shapes_are_400_naming_the_problem(
    tabular_server: RunningServer, attributes: object, message: str
) -> None:
    response = tabular_server.infer("tabular", request(parameters={"attributes": attributes}))
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_parse_attributes_without_attributes_is_empty() -> None:
    assert parse_attributes({"content_type": "np"}, 3) == {}
    assert parse_attributes({"attributes": {"g": [1.5]}}, 1) == {"g": ("1.5",)}
    with pytest.raises(InvalidRequestError, match="at most 32"):
        parse_attributes({"attributes": {f"a{i}": ["x"] for i in range(33)}}, 1)
