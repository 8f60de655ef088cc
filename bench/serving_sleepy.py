"""A shadow that takes 1 s per request: ready at once, every infer answered after a 1 s sleep.

python -m uvicorn bench.serving_sleepy:app --port PORT
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
SLEEP_SECONDS = 1.0


async def app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    if scope["path"].endswith("/infer"):
        await asyncio.sleep(SLEEP_SECONDS)
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": b"{}"})
