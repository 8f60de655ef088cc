"""A complete inference answer (status, headers, body), from a local inference or an error."""

from __future__ import annotations

from dataclasses import dataclass

from kubeloop.contracts.payload_log import REQUEST_ID_HEADER
from kubeloop.contracts.routing import TRACK_HEADER
from kubeloop_serving.response import EncodedResponse
from kubeloop_serving.rest import error_document

Headers = list[tuple[bytes, bytes]]
JSON_HEADERS: Headers = [(b"content-type", b"application/json")]
BINARY_HEADERS: Headers = [(b"content-type", b"application/octet-stream")]
HEADER_LENGTH = b"inference-header-content-length"
TRACK = TRACK_HEADER.encode()
REQUEST_ID = REQUEST_ID_HEADER.encode()


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Headers
    body: bytes


def track_header(track: str) -> tuple[bytes, bytes]:
    return (TRACK, track.encode())


def success(encoded: EncodedResponse, track: tuple[bytes, bytes], request_id: str) -> Answer:
    """200 with JSON, or the binary tensor extension's body and header length; ``x-request-id`` set."""
    named = (REQUEST_ID, request_id.encode("latin-1", "replace"))
    if encoded.header_length is None:
        return Answer(200, [*JSON_HEADERS, track, named], encoded.body)
    headers = [*BINARY_HEADERS, (HEADER_LENGTH, str(encoded.header_length).encode()), track, named]
    return Answer(200, headers, encoded.body)


def failure(error: Exception, track: tuple[bytes, bytes]) -> Answer:
    """``{"error": ...}`` with the error's status."""
    status, document = error_document(error)
    return Answer(status, [*JSON_HEADERS, track], document)
