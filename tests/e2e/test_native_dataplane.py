"""The native data plane on real pods: a ModelDeployment with ``dataPlane: native`` runs kubeloop-dataplane
(from the kubeloop image) in front of ``kubeloop serve`` in its server container. Inference through the
Service is answered by it (its own counts say so) with the reference's numbers; an invalid request is
answered by the Python server behind it, word for word; the pod's /metrics counts both.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from kubeloop.contracts.dataplane import STATS_PATH, DataPlaneStats
from tests.e2e.loop import deploy_model
from tests.e2e.platform import Platform
from tests.unit.serving.conftest import metric_value, tabular_model, tabular_reference

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
NAME = "native"


@pytest.fixture(scope="module")
def url(platform: Platform, e2e_namespace: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    model = tabular_model(tmp_path_factory.mktemp("native") / "tab.onnx")
    deploy_model(platform, e2e_namespace, NAME, Path(model), 1, dataPlane="native")
    return platform.service_url(NAME, e2e_namespace)


def test_inference_is_answered_natively_and_errors_by_the_python_server(
    platform: Platform, e2e_namespace: str, url: str
) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        before = DataPlaneStats.from_json(client.get(STATS_PATH).content).requests
        for rows in (1, 7, 256):
            x = np.random.default_rng(rows).normal(size=(rows, 4)).astype(np.float32)
            body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 4], "data": x.tolist()}]}
            answer = client.post(
                f"/v2/models/{NAME}/infer", json=body, headers={"x-request-id": f"e2e-{rows}"}
            )
            assert answer.status_code == 200, answer.text
            assert (
                answer.headers["x-request-id"] == f"e2e-{rows}"
                and answer.headers["x-kubeloop-track"] == "stable"
            )
            outputs = {output["name"]: output for output in answer.json()["outputs"]}
            scores, label = tabular_reference(x)
            np.testing.assert_allclose(
                np.asarray(outputs["scores"]["data"]).reshape(scores.shape), scores, rtol=1e-5
            )
            np.testing.assert_array_equal(np.asarray(outputs["label"]["data"]), label)
        refused = client.post(f"/v2/models/{NAME}/infer", json={"inputs": []})
        assert refused.status_code == 400 and refused.json() == {"error": "inputs must be a non-empty list"}
        answered = DataPlaneStats.from_json(client.get(STATS_PATH).content)
        assert answered.requests - before == 3  # the three inferences; the 400 came from Python
        exposition = client.get("/metrics").text
    labels = {"model": NAME, "track": "stable"}
    assert metric_value(exposition, "kubeloop_serving_requests_total", code="200", **labels) >= 3
    assert metric_value(exposition, "kubeloop_serving_requests_total", code="400", **labels) == 1
    pod = platform.kubectl.items("pods", e2e_namespace, f"kubeloop.io/modeldeployment={NAME}")[0]
    log = platform.kubectl.run("logs", "-n", e2e_namespace, pod["metadata"]["name"], "-c", "server").stdout
    assert "kubeloop-dataplane: serving native version" in log and "inference answered here" in log
