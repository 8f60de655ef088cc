"""The e2e tier's HTTP helpers against a real HTTP server: an error names what answered, and stays an
`HTTPError` whose status and body callers read."""

from __future__ import annotations

import json
import urllib.error
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from tests.e2e.loop import get, post
from tests.fixtures.http_server import http_server

pytestmark = pytest.mark.unit

REFUSAL = json.dumps({"error": "model 'churn' is not served here; this server serves 'other'"}).encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/v2/models/churn":
            self.answer(200, json.dumps({"name": "churn"}).encode())
        else:
            self.answer(404, REFUSAL)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.answer(400 if body == b"{}" else 200, body)

    def answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def base() -> Iterator[str]:
    with http_server(Handler) as url:
        yield url


def test_a_success_is_the_json_answer(base: str) -> None:
    assert get(f"{base}/v2/models/churn") == {"name": "churn"}
    assert post(f"{base}/echo", b'{"a": 1}') == {"a": 1}


def test_an_error_status_names_the_request_and_the_body_and_keeps_both_readable(base: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        get(f"{base}/v2/models/other")
    error = refused.value
    assert error.code == 404
    assert f"GET {base}/v2/models/other answered: " in str(error)
    assert "this server serves 'other'" in str(error)
    assert error.read() == REFUSAL


def test_a_refused_post_carries_its_status_and_body(base: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        post(f"{base}/echo", b"{}")
    assert refused.value.code == 400 and f"POST {base}/echo answered: {{}}" in str(refused.value)
    assert refused.value.read() == b"{}"
