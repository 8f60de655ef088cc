"""Run as a script: POST many JSON documents at once, each on its own connection.

Reads {"url", "path", "documents"} as JSON on stdin and prints [[status, body], ...]. It runs
in its own process so the server under test (often a thread of the pytest process) does not
share a GIL with the sender: all requests really arrive together.
"""

from __future__ import annotations

import json
import socket
import sys
from typing import Any, BinaryIO


def read_response(stream: BinaryIO) -> tuple[int, str]:
    """One HTTP/1.1 response with a Content-Length body."""
    status = int(stream.readline().split()[1])
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, stream.read(length).decode()


def post_all(url: str, path: str, documents: list[Any]) -> list[tuple[int, str]]:
    """Connect everything, write every request back to back, then read the responses."""
    host, port = url.removeprefix("http://").split(":")
    sockets = [socket.create_connection((host, int(port)), timeout=120) for _ in documents]
    try:
        for sock, document in zip(sockets, documents, strict=True):
            body = json.dumps(document).encode()
            head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        return [read_response(sock.makefile("rb")) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


if __name__ == "__main__":
    job = json.load(sys.stdin)
    json.dump(post_all(job["url"], job["path"], job["documents"]), sys.stdout)
