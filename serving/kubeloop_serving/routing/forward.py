"""Forward an inference request to another server over a pooled keep-alive client (aiohttp)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from kubeloop.contracts.routing import FORWARDED_HEADER
from kubeloop_serving.answer import HEADER_LENGTH, REQUEST_ID, Headers

#: Request headers that belong to one connection (RFC 9110 7.6.1) or that the client recomputes.
_NOT_FORWARDED = {
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
    b"upgrade", b"host", b"content-length", FORWARDED_HEADER.encode(),
}  # fmt: skip
_RETURNED = {
    "content-type": b"content-type",
    HEADER_LENGTH.decode(): HEADER_LENGTH,
    REQUEST_ID.decode(): REQUEST_ID,
}


class UnreachableError(Exception):
    """The route gave no answer; ``reason`` is connect, timeout or error."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Forwarded:
    status: int
    headers: Headers
    body: bytes


def forwarded_headers(request_headers: Headers, forwarded_by: str) -> list[tuple[str, str]]:
    """The request's end-to-end headers, marked as forwarded so the receiver never forwards again."""
    kept = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in request_headers
        if name.lower() not in _NOT_FORWARDED
    ]
    return [*kept, (FORWARDED_HEADER, forwarded_by)]


class Forwarder:
    """One connection pool for one purpose (routes, or the shadow); opened on the event loop."""

    def __init__(self, connect_timeout_s: float, timeout_s: float, max_connections: int = 0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30)
        return aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )

    async def post(self, url: str, body: bytes, headers: Sequence[tuple[str, str]]) -> Forwarded:
        """POST and read the whole answer; UnreachableError when there is none."""
        session = self._session
        if session is None:
            session = self._session = self._open()
        try:
            async with session.post(url, data=body, headers=headers, allow_redirects=False) as response:
                answer = await response.read()
                kept = [
                    (_RETURNED[name.lower()], value.encode("latin-1"))
                    for name, value in response.headers.items()
                    if name.lower() in _RETURNED
                ]
                return Forwarded(response.status, kept, answer)
        except aiohttp.ClientConnectorError as error:
            raise UnreachableError("connect", str(error)) from None
        except TimeoutError as error:  # aiohttp's timeouts are TimeoutErrors too
            raise UnreachableError("timeout", str(error) or type(error).__name__) from None
        except aiohttp.ClientError as error:
            raise UnreachableError("error", f"{type(error).__name__}: {error}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await asyncio.sleep(0)  # let the connector's transports close
