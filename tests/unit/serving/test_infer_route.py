from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from kubeloop_serving.errors import InvalidRequestError, RequestTimeoutError
from kubeloop_serving.infer_route import binary_header_length, infer_target, read_body

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/v2/models/iris/infer", ("iris", None)),
        ("/v2/models/iris/versions/3/infer", ("iris", "3")),
        ("/v2/models/iris", None),
        ("/v2/models/iris/ready", None),
        ("/v2/models/iris/versions/3/ready", None),
        ("/v2/models//infer/extra", None),
        ("/v1/models/iris/infer", None),
        ("/v2/models/iris/other/3/infer", None),
    ],
)
def test_infer_target(path: str, target: tuple[str, str | None] | None) -> None:
    assert infer_target(path) == target


def test_binary_header_length() -> None:
    assert binary_header_length({"headers": []}) is None
    assert binary_header_length({"headers": [(b"inference-header-content-length", b"42")]}) == 42
    with pytest.raises(InvalidRequestError, match="non-negative integer"):
        binary_header_length({"headers": [(b"inference-header-content-length", b"4x")]})


def body_of(
    receive: Any, timeout_s: float | None = 1.0, limit: int = 100, declared: int | None = None
) -> bytes:
    headers = [] if declared is None else [(b"content-length", str(declared).encode())]
    return asyncio.run(_in_a_task(read_body({"headers": headers}, receive, limit, timeout_s)))


async def _in_a_task(awaitable: Awaitable[bytes]) -> bytes:
    async def run() -> bytes:
        return await awaitable

    return await asyncio.create_task(run())


def messages(*chunks: bytes, wait_s: float = 0.0) -> Callable[[], Awaitable[dict[str, Any]]]:
    """A ``receive`` handing out ``chunks`` (the last with more_body false), each after ``wait_s``."""
    pending = list(chunks)

    async def receive() -> dict[str, Any]:
        if wait_s:
            await asyncio.sleep(wait_s)
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    return receive


def test_a_body_that_has_arrived_is_read_at_once() -> None:
    assert body_of(messages(b'{"inputs": []}')) == b'{"inputs": []}'
    assert body_of(messages(b"ab", b"", b"cd")) == b"abcd"


def test_a_body_that_has_to_be_waited_for_is_read_within_the_timeout() -> None:
    assert body_of(messages(b"ab", b"cd", wait_s=0.01)) == b"abcd"
    assert body_of(messages(b"abcd", wait_s=0.01), timeout_s=None) == b"abcd"


def test_a_body_that_does_not_arrive_in_time_is_a_408() -> None:
    with pytest.raises(RequestTimeoutError, match=r"did not arrive within 0\.05 s"):
        body_of(messages(b"ab", wait_s=5.0), timeout_s=0.05)
    with pytest.raises(RequestTimeoutError, match=r"within 0\.05 s"):
        body_of(_first_now_then_never(), timeout_s=0.05)


def _first_now_then_never() -> Callable[[], Awaitable[dict[str, Any]]]:
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls > 1:
            await asyncio.Event().wait()
        return {"type": "http.request", "body": b"ab", "more_body": True}

    return receive


def test_the_timeout_reaches_the_waiting_receive_as_a_cancellation() -> None:
    seen: list[str] = []

    async def receive() -> dict[str, Any]:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")
        return {}  # pragma: no cover

    with pytest.raises(RequestTimeoutError):
        body_of(receive, timeout_s=0.02)
    assert seen == ["cancelled", "finally"]


def test_a_receive_that_returns_a_future_is_awaited() -> None:
    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()

        def receive() -> asyncio.Future[dict[str, Any]]:
            future: asyncio.Future[dict[str, Any]] = loop.create_future()
            loop.call_later(0.01, future.set_result, {"type": "http.request", "body": b"ok"})
            return future

        return await read_body({"headers": []}, receive, 100, 1.0)

    assert asyncio.run(scenario()) == b"ok"


def test_bodies_over_the_limit_are_refused_whether_declared_waited_for_or_not() -> None:
    with pytest.raises(InvalidRequestError, match="request body of 101 bytes exceeds the limit of 100"):
        body_of(messages(b"x"), declared=101)
    with pytest.raises(InvalidRequestError, match="request body exceeds the limit of 100 bytes"):
        body_of(messages(b"x" * 101))
    with pytest.raises(InvalidRequestError, match="request body exceeds the limit of 100 bytes"):
        body_of(messages(b"x" * 101, wait_s=0.01))
    with pytest.raises(InvalidRequestError, match="request body exceeds the limit of 100 bytes"):
        body_of(messages(b"x" * 60, b"x" * 41))


def test_an_error_raised_by_receive_reaches_the_caller() -> None:
    async def broken() -> dict[str, Any]:
        raise ConnectionResetError("gone")

    async def broken_later() -> dict[str, Any]:
        await asyncio.sleep(0.01)
        raise ConnectionResetError("gone")

    for receive in (broken, broken_later):
        with pytest.raises(ConnectionResetError, match="gone"):
            body_of(receive)
