"""Helpers for hostile-client tests: peak memory of this process, a client that trickles its body."""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

STATUS = Path("/proc/self/status")


def peak_rss_bytes() -> int:
    """VmHWM of this process (the peak resident set), in bytes."""
    for line in STATUS.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs); False when not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class TrickleResult:
    status: int | None
    seconds: float
    bytes_sent: int


def trickle_post(port: int, path: str, body: bytes, interval_s: float, give_up_s: float) -> TrickleResult:
    """POST ``body`` one byte every ``interval_s``; stop at the first response byte or after ``give_up_s``."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=give_up_s) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode())
        sent = 0
        while time.monotonic() - started < give_up_s:
            readable, _, _ = select.select([sock], [], [], interval_s)
            if readable:
                break
            if sent < len(body):
                try:
                    sock.sendall(body[sent : sent + 1])
                except OSError:
                    break
                sent += 1
        response = b""
        with contextlib.suppress(OSError):
            response = sock.recv(4096)
    status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else None
    return TrickleResult(status, time.monotonic() - started, sent)


def bytes_bomb(elements: int) -> tuple[bytes, dict[str, str]]:
    """A ~300-byte binary-extension request whose BYTES input declares ``elements`` strings."""
    header = orjson.dumps(
        {
            "id": "bomb-" + "0" * 160,
            "inputs": [
                {
                    "name": "x",
                    "datatype": "BYTES",
                    "shape": [elements],
                    "parameters": {"binary_data_size": 8},
                }
            ],
        }
    )
    body = header + struct.pack("<I", 4) + b"abcd"
    return body, {"Inference-Header-Content-Length": str(len(header))}
