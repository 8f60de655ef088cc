"""Readiness, sha256 refusal, and a graceful drain on SIGTERM, with real processes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from kubeloop_serving.cli import main
from kubeloop_serving.storage import sha256_of
from tests.fixtures.serve import ServerProcess
from tests.unit.serving.conftest import (
    GATHER_TABLE,
    logged_rows,
    serve_in_thread,
    wait_for,
)

pytestmark = pytest.mark.unit


def test_sha256_mismatch_exits_non_zero_and_never_becomes_ready(
    server_process: Callable[..., ServerProcess], tabular_path: Path
) -> None:
    server = server_process(model_uri=str(tabular_path), model_sha256="0" * 64)
    assert not server.wait_ready()
    assert server.wait_exit() == 1
    assert "refusing to become ready: sha256 mismatch" in server.output
    assert sha256_of(tabular_path) in server.output
    last = server.output.strip().splitlines()[-1]  # what a pod's termination message ends with
    assert "exiting: sha256 mismatch" in last, server.output


def test_matching_sha256_becomes_ready(tabular_path: Path) -> None:
    with serve_in_thread(tabular_path, model_sha256=sha256_of(tabular_path).upper()) as server:
        assert server.client.get("/v2/health/ready").status_code == 200


def test_live_but_not_ready_until_the_model_is_loaded(gated_model_url: tuple[str, threading.Event]) -> None:
    from kubeloop_serving.server import ServingServer
    from kubeloop_serving.settings import ServingSettings

    url, gate = gated_model_url
    server = ServingServer(
        ServingSettings(model_uri=url, model_name="tab", host="127.0.0.1", port=0, grpc_port=0)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.uvicorn.started, "uvicorn to start")
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert client.get("/v2/health/live").status_code == 200
            assert client.get("/v2/health/ready").status_code == 503
            assert client.get("/v2/models/tab/ready").status_code == 503
            assert client.get("/v2/models/tab").status_code == 503
            infer = client.post("/v2/models/tab/infer", json={"inputs": []})
            assert infer.status_code == 503
            assert "not ready" in infer.json()["error"]
            gate.set()
            wait_for(lambda: client.get("/v2/health/ready").status_code == 200, "the model to load")
            assert client.get("/v2/models/tab/ready").json() == {"name": "tab", "ready": True}
    finally:
        server.request_stop()
        thread.join(60)


def test_invalid_settings_exit_with_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBELOOP_SERVING_MODEL_URI", raising=False)
    assert main([]) == 2


@dataclass
class LoadResult:
    ok_ids: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    unanswered: int = 0


async def load_until_refused(server: ServerProcess, workers: int, sigterm_after: int) -> LoadResult:
    """``workers`` clients send requests until refused; SIGTERM once ``sigterm_after`` got answers."""
    result = LoadResult()
    answered = 0
    limits = httpx.Limits(max_connections=workers)

    async def worker(number: int, client: httpx.AsyncClient) -> None:
        nonlocal answered
        sequence = 0
        while True:
            request_id = f"w{number}-{sequence}"
            sequence += 1
            document = {
                "id": request_id,
                "inputs": [
                    {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [number] * 4},
                    {"name": "idx", "datatype": "INT64", "shape": [1], "data": [number % 10]},
                ],
            }
            try:
                response = await client.post("/v2/models/gather/infer", json=document)
            except httpx.TransportError:
                result.unanswered += 1
                return  # refused or closed by the shutting-down server: never answered
            answered += 1
            if answered == sigterm_after:
                server.process.terminate()
            expected = (GATHER_TABLE[number % 10] + number).tolist()
            if response.status_code == 200 and response.json()["outputs"][0]["data"] == expected:
                result.ok_ids.append(request_id)
            else:
                result.failures.append(f"{response.status_code}: {response.text}")

    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
        await asyncio.gather(*(worker(number, client) for number in range(workers)))
    return result


def test_sigterm_under_load_loses_no_accepted_request(
    server_process: Callable[..., ServerProcess], slow_gather_path: Path, tmp_path: Path
) -> None:
    sink = tmp_path / "payloads"
    server = server_process(
        model_uri=str(slow_gather_path),
        model_name="gather",
        payload_log_uri=str(sink),
        payload_log_flush_seconds="3600",
        log_level="warning",
    )
    assert server.wait_ready(), server.output
    result = asyncio.run(load_until_refused(server, workers=32, sigterm_after=150))
    assert server.wait_exit() == 0, server.output
    assert result.failures == []
    assert len(result.ok_ids) >= 150
    assert result.unanswered == 32  # every worker ended on a refused or closed connection
    logged = logged_rows(str(sink), "gather").column("_request_id").to_pylist()
    assert sorted(logged) == sorted(result.ok_ids), "the payload log was not flushed on shutdown"


def test_stopping_moves_keep_alive_clients_off_before_closing(tabular_path: Path) -> None:
    """After the stop begins, a request on an open keep-alive connection is still answered, with
    `Connection: close`; a connection opened before the stop and left idle is closed only later."""
    import socket
    import time

    from kubeloop_serving.drain import CLOSE_IDLE_AFTER_SECONDS, DrainingServer

    request = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    with serve_in_thread(tabular_path) as running:
        assert running.server is not None and isinstance(running.server.uvicorn, DrainingServer)
        port = running.server.port
        busy = socket.create_connection(("127.0.0.1", port), timeout=10)
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        busy.sendall(request)
        assert b"200 OK" in busy.recv(4096)
        stopped_at = time.monotonic()
        running.server.request_stop()
        gate = running.server.uvicorn.gate
        wait_for(lambda: gate.draining, "the stop to begin: listeners closed, connections open")
        busy.sendall(request)
        answer = busy.recv(4096)
        assert b"200 OK" in answer and b"connection: close" in answer.lower(), answer
        assert busy.recv(4096) == b"", "the server closes the connection after that answer"
        idle.settimeout(CLOSE_IDLE_AFTER_SECONDS + 10)
        assert idle.recv(4096) == b""
        assert time.monotonic() - stopped_at >= CLOSE_IDLE_AFTER_SECONDS * 0.9, "idle clients had time"
        busy.close()
        idle.close()
