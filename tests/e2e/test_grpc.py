"""OIP v2 gRPC on real pods: tritonclient.grpc, unchanged, infers through the ModelDeployment's Service
(its `grpc` port), and every pod behind the headless `<name>-grpc` Service answers on its own address,
which is what a `dns:///` client with round_robin balances over. A large JSON request (parsed by
simdjson in the pod) gets the same answer over REST. A server killed outright restarts in its pod and
removes the model copy the killed one left in the pod's /tmp.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton

from tests.e2e.loop import deploy_model
from tests.e2e.platform import Platform
from tests.fixtures.cluster import wait_for
from tests.unit.serving.conftest import tabular_model, tabular_reference

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
NAME = "tab"
REPLICAS = 2


@pytest.fixture(scope="module")
def deployed(platform: Platform, e2e_namespace: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    model = tabular_model(tmp_path_factory.mktemp("grpc") / "tab.onnx")
    deploy_model(platform, e2e_namespace, NAME, Path(model), REPLICAS)
    return e2e_namespace


def check_infer(client: triton.InferenceServerClient, rows: int) -> None:
    x = np.random.default_rng(rows).normal(size=(rows, 4)).astype(np.float32)
    given = triton.InferInput("x", [rows, 4], "FP32")
    given.set_data_from_numpy(x)
    result = client.infer(NAME, [given], request_id=f"e2e-{rows}")
    scores, label = tabular_reference(x)
    np.testing.assert_allclose(result.as_numpy("scores"), scores, rtol=1e-5)
    np.testing.assert_array_equal(result.as_numpy("label"), label)
    assert result.get_response().id == f"e2e-{rows}"


def test_tritonclient_infers_through_the_service(platform: Platform, deployed: str) -> None:
    target = platform.service_url(NAME, deployed, "grpc").removeprefix("http://")
    client = triton.InferenceServerClient(target)
    assert client.is_server_live() and client.is_model_ready(NAME)
    metadata = client.get_model_metadata(NAME, as_json=True)
    assert [tensor["name"] for tensor in metadata["outputs"]] == ["scores", "label"]
    for rows in (1, 5, 64):
        check_infer(client, rows)
    client.close()


def test_a_large_json_request_is_answered_as_the_reference_does(platform: Platform, deployed: str) -> None:
    rows = 512  # 2,048 floats: a body of ~40 KB, above serving's SIMD_JSON_BYTES
    x = np.random.default_rng(7).normal(size=(rows, 4)).astype(np.float32)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 4], "data": x.ravel().tolist()}]}
    url = f"{platform.service_url(NAME, deployed)}/v2/models/{NAME}/infer"
    answer = httpx.post(url, json=body, timeout=60)
    assert answer.status_code == 200 and len(answer.request.content) > 8192, answer.text
    outputs = {output["name"]: output for output in answer.json()["outputs"]}
    scores, label = tabular_reference(x)
    np.testing.assert_allclose(np.asarray(outputs["scores"]["data"]).reshape(scores.shape), scores, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(outputs["label"]["data"]).reshape(label.shape), label)


def test_the_headless_service_lists_every_pod_and_each_answers(platform: Platform, deployed: str) -> None:
    headless = platform.kubectl.get("service", f"{NAME}-grpc", deployed)
    assert headless is not None and headless["spec"]["clusterIP"] == "None"
    assert [(p["name"], p["port"], p.get("appProtocol")) for p in headless["spec"]["ports"]] == [
        ("grpc", 8081, "grpc")
    ]
    slices = platform.kubectl.items("endpointslices", deployed, f"kubernetes.io/service-name={NAME}-grpc")
    addresses = sorted(
        address
        for endpoint_slice in slices
        for endpoint in endpoint_slice.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready")
        for address in endpoint["addresses"]
    )
    assert len(addresses) == REPLICAS, slices
    if platform.target.mode != "local":
        pytest.skip(
            "pod IPs are dialled on the local node only (another cluster's pod network is not routed)"
        )
    for address in addresses:  # what a dns:/// round_robin client connects to, one subchannel each
        client = triton.InferenceServerClient(f"{address}:8081")
        check_infer(client, 3)
        client.close()


def test_a_server_killed_outright_restarts_and_removes_the_model_copy_it_left(
    platform: Platform, deployed: str
) -> None:
    """An OOM kill is SIGKILL: the server cannot remove its downloaded model, and the pod's /tmp (an
    emptyDir) outlives the container. The restarted server removes that copy before making its own."""
    if platform.target.mode != "local":
        pytest.skip("the server's process is killed from the node's host")
    pod = platform.kubectl.items("pods", deployed, f"kubeloop.io/modeldeployment={NAME}")[0]
    name, container = pod["metadata"]["name"], pod["status"]["containerStatuses"][0]
    assert container["name"] == "server" and container["restartCount"] == 0
    (left,) = model_copies(platform, deployed, name)
    pids = container_pids(container["containerID"].partition("://")[2])
    assert pids, f"no process of {name}'s server on this host"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)

    def restarted_and_ready() -> dict[str, Any] | None:
        now = platform.kubectl.get("pod", name, deployed)
        status = (now or {}).get("status", {}).get("containerStatuses", [{}])[0]
        return status if status.get("restartCount") == 1 and status.get("ready") else None

    status = wait_for(restarted_and_ready, 300, interval=2, what=f"{name}'s server restarted and ready")
    assert status["lastState"]["terminated"]["exitCode"] == 137  # 128 + SIGKILL
    (now,) = model_copies(platform, deployed, name)
    assert now != left
    log = platform.kubectl.run("logs", "-n", deployed, name, "-c", "server").stdout
    assert f"removing /tmp/{left}: its server stopped without removing it" in log
    client = triton.InferenceServerClient(f"{pod['status']['podIP']}:8081")  # kept across the restart
    check_infer(client, 3)
    client.close()


def model_copies(platform: Platform, namespace: str, pod: str) -> list[str]:
    """The model directories in the server's /tmp (the image's Python lists them; it has no shell tools
    we rely on)."""
    listing = "import os; print(*sorted(n for n in os.listdir('/tmp') if n.startswith('kubeloop-model-')))"
    out = platform.kubectl.run("exec", "-n", namespace, pod, "-c", "server", "--", "python", "-c", listing)
    return out.stdout.split()


def container_pids(container_id: str) -> list[int]:
    """This host's processes in the container: its id is in each of their cgroup paths (cgroup v1 or v2,
    either cgroup driver)."""
    pids = []
    for cgroup in Path("/proc").glob("[0-9]*/cgroup"):
        try:
            if container_id in cgroup.read_text():
                pids.append(int(cgroup.parent.name))
        except OSError:  # the process ended
            continue
    return pids
