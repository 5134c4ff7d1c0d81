"""The API key never leaks: not in logs (ours, httpx's, httpcore's), errors or reprs."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stamina
from pydantic import SecretStr

from automations.errors import APIError, ConfigError
from automations.incidentio import IncidentIOClient, TokenBucket
from tests.test_client_models import API_KEY, FakeTime, error_body, incident


class _Handler(BaseHTTPRequestHandler):
    """A tiny real server: /v2/incidents/1 works, 2 is a 503 page, 3 is 401, 4 hangs."""

    def do_GET(self) -> None:
        number = self.path.rsplit("/", 1)[-1]
        if number == "4":
            threading.Event().wait(1.0)
        status, body, kind = {
            "1": (200, json.dumps({"incident": incident(1)}), "application/json"),
            "2": (503, "<html>down</html>", "text/html"),
            "3": (
                401,
                json.dumps(error_body(401, "authentication_error", "invalid_key", "Bad key", None)),
                "application/json",
            ),
        }.get(number, (404, "{}", "application/json"))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up (the retry tests time out on purpose) is not news."""


@pytest.fixture
def server() -> Iterator[str]:
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def everything_about(exc: BaseException) -> str:
    """The text an exception can end up as: str, repr, the whole chained traceback."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


def test_key_appears_nowhere(
    server: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Success, retries, rejection, timeouts and refused connections leak nothing at DEBUG."""
    fake = FakeTime()
    monkeypatch.setattr(time, "sleep", fake.sleep)
    caplog.set_level(logging.DEBUG)  # root: ours, httpx, httpcore, stamina
    for name in ("httpx", "httpcore", "stamina", "automations"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    bucket = TokenBucket(60_000, burst=100)
    client = IncidentIOClient(
        base_url=server,
        api_key=SecretStr(API_KEY),
        rate_limiter=bucket,
        timeout=0.2,
        retry_attempts=2,
    )
    dead = IncidentIOClient(
        base_url=f"http://127.0.0.1:{closed_port()}", api_key=API_KEY, retry_attempts=2
    )
    errors: list[APIError] = []
    with stamina.set_testing(False):
        assert client.get_incident("1").reference == "INC-1"
        for call in (
            lambda: client.get_incident("2"),
            lambda: client.get_incident("3"),
            lambda: client.get_incident("4"),
            lambda: dead.list_severities(),
        ):
            with pytest.raises(APIError) as info:
                call()
            errors.append(info.value)
    assert [e.status for e in errors] == [503, 401, None, None]
    assert "ReadTimeout" in str(errors[2])
    assert "ConnectError" in str(errors[3])
    assert any(r.name.startswith("httpcore") for r in caplog.records)  # real transport logged
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + repr(record.__dict__)
        assert API_KEY not in text, f"key in log record from {record.name}"
    for exc in errors:
        assert API_KEY not in everything_about(exc)
    assert API_KEY not in caplog.text
    for obj in (client, client.rate_limiter, client.counter, client._http, client._http.auth):
        assert API_KEY not in repr(obj)
        assert API_KEY not in str(obj)
    client.close()
    dead.close()


def test_transport_error_text_is_redacted() -> None:
    """Even if a lower layer quoted the key in its error text, our message would not."""
    import httpx

    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError(f"Illegal header value b'Bearer {API_KEY}'")

    client = IncidentIOClient(
        api_key=API_KEY, transport=httpx.MockTransport(boom), retry_attempts=1
    )
    with pytest.raises(APIError) as info:
        client.list_severities()
    assert "[redacted]" in str(info.value)
    assert API_KEY not in everything_about(info.value)


def test_config_errors_do_not_echo_the_key() -> None:
    """A malformed key is refused without quoting it."""
    bad = API_KEY + "\n"  # a trailing newline from a file is stripped, not refused
    IncidentIOClient(api_key=bad).close()
    with pytest.raises(ConfigError) as info:
        IncidentIOClient(api_key=API_KEY[:5] + " " + API_KEY[5:])
    assert API_KEY[:5] not in everything_about(info.value)
