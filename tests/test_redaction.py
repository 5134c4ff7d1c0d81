"""Upstream text is made safe at the client boundary: no key, no credentials, bounded length.

A proxy or server that echoes the request (debug pages, some gateways) echoes
the Authorization header. Whatever it says must not carry the key into an
exception, a log line, the ledger, ``history --json`` or ``/healthz``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import stamina
from pydantic import SecretStr

from automations.daemon import run_once
from automations.errors import APIError, ConfigError
from automations.incidentio import IncidentIOClient
from automations.logs import quiet_libraries
from automations.metrics import Metrics
from tests.engine_harness import Harness
from tests.hostile_proxy import Answer, Exchange, HostileProxy
from tests.sandbox_server import SandboxControl
from tests.secret_values import SANDBOX_KEY
from tests.test_client_secrets import everything_about
from tests.test_engine_sandbox import ESCALATE

H = timedelta(hours=1)
JSON = {"content-type": "application/json"}


def _json(status: int, body: Any, **headers: str) -> Answer:
    return Answer(status, {**JSON, **headers}, json.dumps(body).encode())


def _envelope(status: int, message: str, **extra: Any) -> dict[str, Any]:
    error = {"code": "invalid", "message": message, "source": {"field": "x", "pointer": "/x"}}
    return {"type": "invalid_request_error", "status": status, "errors": [error], **extra}


# Each builds a hostile answer from the Authorization header the proxy received.
ECHOES: dict[str, Callable[[str], Answer]] = {
    "errors[] of a 401": lambda auth: _json(
        401, _envelope(401, f"bad header Authorization: {auth}")
    ),
    "top-level message of a 500": lambda auth: _json(
        500, {"type": "api_error", "status": 500, "message": f"upstream said no to {auth}"}
    ),
    "HTML page of a 502": lambda auth: Answer(
        502,
        {"content-type": "text/html"},
        f"<html><head><title>Bad Gateway</title></head><body><pre>GET /v1/severities\n"
        f"Authorization: {auth}\nHost: api</pre></body></html>".encode(),
    ),
    "request ID of a 403": lambda auth: _json(
        403,
        _envelope(403, "forbidden", request_id=auth.split()[-1]),
        **{"x-request-id": auth.split()[-1]},
    ),
    "the bare key and another token in a 400": lambda auth: _json(
        400, _envelope(400, f"key {auth.split()[-1]} refused; try Bearer abc.def-123 instead")
    ),
}


def _echo(make: Callable[[str], Answer]) -> Callable[[Exchange], Answer | None]:
    def answer(exchange: Exchange) -> Answer | None:
        if exchange.path != "/v1/severities":
            return None
        return make(exchange.headers["authorization"])

    return answer


def _client(base_url: str, **kwargs: Any) -> IncidentIOClient:
    return IncidentIOClient(base_url=base_url, api_key=SecretStr(SANDBOX_KEY), **kwargs)


@pytest.mark.parametrize("shape", ECHOES.values(), ids=ECHOES.keys())
def test_an_echoed_key_is_redacted_from_the_error_and_its_log_line(
    hostile: HostileProxy,
    caplog: pytest.LogCaptureFixture,
    shape: Callable[[str], Answer],
) -> None:
    """The key echoed anywhere in an error answer is replaced, and the rest of the text kept."""
    hostile.answer = _echo(shape)
    caplog.set_level(logging.DEBUG, logger="automations")
    quiet_libraries()  # as the product pins them; an earlier test may have left them at DEBUG
    with _client(hostile.url, retry_attempts=1) as client, pytest.raises(APIError) as info:
        client.list_severities()
    text = everything_about(info.value)
    assert SANDBOX_KEY not in text
    assert "[redacted]" in str(info.value)
    assert "abc.def-123" not in text  # any bearer token, not only ours
    assert SANDBOX_KEY not in caplog.text
    assert any("/v1/severities" in r.getMessage() for r in caplog.records)  # the call was logged


def test_the_useful_part_of_upstream_text_is_kept(hostile: HostileProxy) -> None:
    """Redaction is surgical: the page's words and the API's message survive."""
    hostile.answer = _echo(ECHOES["HTML page of a 502"])
    with _client(hostile.url, retry_attempts=1) as client, pytest.raises(APIError) as info:
        client.list_severities()
    assert "Bad Gateway" in str(info.value)
    assert "text/html" in str(info.value)
    hostile.answer = _echo(ECHOES["top-level message of a 500"])
    with _client(hostile.url, retry_attempts=1) as client, pytest.raises(APIError) as info:
        client.list_severities()
    assert "upstream said no to Bearer [redacted]" in str(info.value)


def test_upstream_text_is_capped_and_kept_on_one_line(hostile: HostileProxy) -> None:
    """A megabyte of errors[] (with line breaks) becomes one short line, not a huge log record."""
    flood = "spam\nFAKE LOG LINE level=critical\r\n" * 300
    body = {
        "type": "validation_error" * 500,
        "status": 422,
        "request_id": "r" * 10_000,
        "errors": [{"code": "c" * 1_000, "message": flood} for _ in range(100)],
    }
    hostile.answer = lambda e: _json(422, body) if e.path == "/v1/severities" else None
    with _client(hostile.url) as client, pytest.raises(APIError) as info:
        client.list_severities()
    text = str(info.value)
    assert len(text) < 4_000
    assert "\n" not in text
    assert "\r" not in text
    assert "more characters" in text  # says it was cut
    assert "more errors" in text


def test_an_echoed_key_reaches_neither_ledger_nor_history(
    harness: Harness, hostile: HostileProxy
) -> None:
    """A real ``once`` whose edit is refused with the key echoed: ledger and history are clean."""

    def refuse_edits(exchange: Exchange) -> Answer | None:
        if not exchange.path.endswith("/actions/edit"):
            return None
        auth = exchange.headers["authorization"]
        return _json(422, _envelope(422, f"cannot edit with Authorization: {auth}"))

    hostile.answer = refuse_edits
    harness.write(ESCALATE, base_url=hostile.url)
    harness.add("Stuck", age=3 * H)

    once = harness.cli("once")
    history = harness.cli("history", "--json")

    assert once.returncode == 1, once.stderr  # an action failed
    assert "1 failed" in once.stderr
    assert SANDBOX_KEY not in once.stderr
    (event,) = json.loads(history.stdout)
    assert event["state"] == "failed"
    assert "cannot edit with Authorization: Bearer [redacted]" in event["error"]
    assert SANDBOX_KEY not in history.stdout
    for path in harness.tmp_path.glob("ledger.db*"):
        assert SANDBOX_KEY.encode() not in path.read_bytes(), path.name


def test_an_echoed_key_does_not_reach_healthz(harness: Harness, hostile: HostileProxy) -> None:
    """A cycle failed by an echoing 5xx: the health verdict's reason carries no key."""
    harness.write(ESCALATE, base_url=hostile.url)
    runtime = harness.runtime()
    metrics = Metrics(stale_after=timedelta(minutes=5))

    def echo_on_list(exchange: Exchange) -> Answer | None:
        if exchange.path != "/v2/incidents":
            return None
        auth = exchange.headers["authorization"]
        return _json(503, _envelope(503, f"overloaded while serving Authorization: {auth}"))

    hostile.answer = echo_on_list
    try:
        with stamina.set_testing(True):  # the 502 is retried: without the sleeps
            (report,) = run_once(runtime)
    finally:
        runtime.close()
    metrics.observe_cycle(report)
    health = metrics.health()
    assert not health.ok
    assert "503" in health.reason
    assert "overloaded" not in health.reason  # no upstream text at all, redacted or not
    assert SANDBOX_KEY not in health.reason


# --- base_url userinfo ------------------------------------------------------------------


def test_base_url_userinfo_is_never_printed(
    sandbox: SandboxControl, caplog: pytest.LogCaptureFixture
) -> None:
    """user:password in base_url appears in no repr and no log line; the client still works."""
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    url = sandbox.base_url.replace("http://", "http://ops:hunter2@")
    with _client(url) as client:
        assert client.list_severities()
        assert "hunter2" not in repr(client)
        assert "hunter2" not in client.base_url
        assert client.base_url == sandbox.base_url
    assert "hunter2" not in caplog.text
    assert any("user:password" in r.getMessage() for r in caplog.records)  # said once why


def test_messages_naming_a_url_strip_userinfo(hostile: HostileProxy) -> None:
    """A redirect to a URL with credentials, and a refused base_url, are named without them."""
    hostile.answer = lambda e: Answer(302, {"location": "https://admin:hunter2@elsewhere/v1"}, b"")
    with _client(hostile.url) as client, pytest.raises(APIError) as info:
        client.list_severities()
    assert "hunter2" not in everything_about(info.value)
    assert "https://elsewhere/v1" in str(info.value)
    with pytest.raises(ConfigError) as refused:
        _client("ftp://ops:hunter2@example.com")
    assert "hunter2" not in f"{refused.value} {refused.value!r}"
    assert "ftp://example.com" in str(refused.value)
