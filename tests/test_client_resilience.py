"""Retries: what is retried, how long each wait is, when it stops, and what is logged.

stamina really runs here (not in test mode): ``time.sleep``, which it sleeps
with, is replaced by a fake clock so the waits it chose can be asserted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pytest
import stamina
from pydantic import SecretStr
from stamina.instrumentation import get_on_retry_hooks, set_on_retry_hooks

from automations.config import load_config
from automations.errors import APIRejected, APIUnavailable
from automations.incidentio import IncidentIOClient, TokenBucket
from automations.incidentio.retries import (
    RETRIED_CALLABLE,
    CallState,
    RetryPolicy,
    RetryWaits,
    _SkipClientRetries,
    quiet_stamina_for_client,
)
from automations.runtime import make_client as build_client
from tests.openapi_conformance import Conformance
from tests.test_client_models import FakeTime, Recorder, error_body, incident, make_client, ok

SUCCESS = {"incident": incident(1)}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTime]:
    """Retries on, test mode off, and every sleep recorded instead of slept."""
    clock = FakeTime()
    monkeypatch.setattr(time, "sleep", clock.sleep)
    with stamina.set_testing(False):
        yield clock


def sequence(*responses: httpx.Response | Exception) -> Callable[[httpx.Request], httpx.Response]:
    """A handler giving each response in turn (the last one forever); exceptions are raised."""
    calls = count()

    def handler(request: httpx.Request) -> httpx.Response:
        item = responses[min(next(calls), len(responses) - 1)]
        if isinstance(item, Exception):
            raise item
        return item

    return handler


def unavailable(status: int = 503, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json=error_body(status, "api_error", "x", "down", None), headers=headers
    )


def client_for(
    openapi: Conformance,
    fake: FakeTime,
    handler: Callable[[httpx.Request], httpx.Response],
    **kwargs: Any,
) -> tuple[IncidentIOClient, Recorder]:
    recorder = Recorder(openapi, handler, check_responses=False)
    return make_client(recorder, fake, **kwargs), recorder


def test_503s_then_success(
    openapi: Conformance, fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    """Two 503s then 200: three attempts, exponential waits with jitter, one INFO line."""
    caplog.set_level(logging.DEBUG)
    client, recorder = client_for(
        openapi, fake, sequence(unavailable(), unavailable(), ok(SUCCESS))
    )
    assert client.get_incident("1").id == incident(1)["id"]
    assert len(recorder.requests) == 3
    first, second = fake.retry_sleeps
    assert 0.5 <= first <= 1.5
    assert 1.0 <= second <= 2.0
    assert client.counter.snapshot() == {"GET /v2/incidents/{id}": {"200": 1, "503": 2}}
    ours = [r for r in caplog.records if r.name.startswith("automations.incidentio.")]
    assert [r.levelname for r in ours if r.levelno >= logging.INFO] == ["INFO"]
    assert "succeeded after 3 attempts (statuses 503,503,200" in ours[-1].getMessage()
    assert not [r for r in caplog.records if r.name == "stamina"]


def test_retry_after_seconds_is_the_wait(openapi: Conformance, fake: FakeTime) -> None:
    """429 with Retry-After: 2 waits exactly 2s (more than the backoff would)."""
    client, _ = client_for(
        openapi, fake, sequence(unavailable(429, **{"Retry-After": "2"}), ok(SUCCESS))
    )
    client.get_incident("1")
    assert fake.retry_sleeps == [2.0]


def test_retry_after_http_date_is_measured_from_the_server_date(
    openapi: Conformance, fake: FakeTime
) -> None:
    """An HTTP-date Retry-After counts from the response's Date (server clock), not ours."""
    headers = {
        "Date": "Wed, 01 May 2024 10:00:00 GMT",
        "Retry-After": "Wed, 01 May 2024 10:00:03 GMT",
    }
    client, _ = client_for(openapi, fake, sequence(unavailable(429, **headers), ok(SUCCESS)))
    client.get_incident("1")
    assert fake.retry_sleeps == [3.0]


def test_retry_after_zero_still_backs_off(openapi: Conformance, fake: FakeTime) -> None:
    """Retry-After: 0 (or a past date) never turns into an immediate hot retry."""
    client, _ = client_for(
        openapi, fake, sequence(unavailable(503, **{"Retry-After": "0"}), ok(SUCCESS))
    )
    client.get_incident("1")
    assert 0.5 <= fake.retry_sleeps[0] <= 1.5


def test_retry_after_beyond_the_budget_gives_up_at_once(
    openapi: Conformance, fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    """A wait longer than retry_timeout fails now (carrying retry_after) instead of sleeping."""
    client, recorder = client_for(
        openapi, fake, sequence(unavailable(429, **{"Retry-After": "600"}), ok(SUCCESS))
    )
    with pytest.raises(APIUnavailable) as info:
        client.get_incident("1")
    assert info.value.status == 429
    assert info.value.retry_after == 600
    assert len(recorder.requests) == 1
    assert fake.retry_sleeps == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "failed after 1 attempt(s) (statuses 429" in warnings[0].message


def test_retry_after_is_capped(openapi: Conformance, fake: FakeTime) -> None:
    """With a large budget, a huge Retry-After is cut to 5 minutes."""
    client, _ = client_for(
        openapi,
        fake,
        sequence(unavailable(429, **{"Retry-After": "86400"}), ok(SUCCESS)),
        retry_timeout=1000.0,
    )
    client.get_incident("1")
    assert fake.retry_sleeps == [300.0]


def test_429_pauses_the_shared_bucket(openapi: Conformance, fake: FakeTime) -> None:
    """A 429 defers every client sharing the bucket, not only the one that got it."""
    deferred: list[float] = []

    class Recording(TokenBucket):
        def defer(self, seconds: float) -> None:
            deferred.append(seconds)
            super().defer(seconds)

    bucket = Recording(60_000, burst=100, clock=fake.monotonic, sleep=fake.bucket_sleep)
    client, _ = client_for(
        openapi,
        fake,
        sequence(unavailable(429, **{"Retry-After": "2"}), ok(SUCCESS)),
        rate_limiter=bucket,
    )
    client.get_incident("1")
    assert deferred == [2.0]
    assert sum(fake.bucket_sleeps) < 0.01  # the retry's own 2s wait covered the pause


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectError("connection refused"),
        httpx.RemoteProtocolError("peer closed connection"),
        httpx.ConnectTimeout("slow"),
    ],
)
def test_transport_errors_are_retried(
    openapi: Conformance, fake: FakeTime, failure: Exception
) -> None:
    """Timeouts, refused connections and protocol errors are retried, then succeed."""
    client, recorder = client_for(openapi, fake, sequence(failure, ok(SUCCESS)))
    assert client.get_incident("1").reference == "INC-1"
    assert len(recorder.requests) == 2
    assert client.counter.count(status="error") == 1


def test_attempts_are_bounded(openapi: Conformance, fake: FakeTime) -> None:
    """A dead server costs retry_attempts requests, then APIUnavailable from the last cause."""
    client, recorder = client_for(
        openapi, fake, sequence(httpx.ConnectError("refused")), retry_attempts=4
    )
    with pytest.raises(APIUnavailable, match="ConnectError: refused") as info:
        client.get_incident("1")
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert info.value.route == "/v2/incidents/{id}"
    assert info.value.method == "GET"
    assert len(recorder.requests) == 4
    assert len(fake.retry_sleeps) == 3
    assert client.counter.count(status="error") == 4


def test_retries_respect_stamina_test_mode(openapi: Conformance, fake: FakeTime) -> None:
    """stamina.set_testing caps attempts and removes waits, as the rest of the product expects."""
    client, recorder = client_for(openapi, fake, sequence(unavailable()))
    with stamina.set_testing(True, attempts=2), pytest.raises(APIUnavailable):
        client.get_incident("1")
    assert len(recorder.requests) == 2
    assert all(s == 0 for s in fake.retry_sleeps)


@pytest.mark.parametrize(
    ("status", "type_", "field"),
    [
        (400, "invalid_request_error", "status_category"),
        (401, "authentication_error", None),
        (403, "resource_forbidden", None),
        (404, "not_found", None),
        (409, "conflict", None),
        (422, "validation_error", "severity_id"),
    ],
)
def test_rejections_raise_once(
    openapi: Conformance,
    fake: FakeTime,
    caplog: pytest.LogCaptureFixture,
    status: int,
    type_: str,
    field: str | None,
) -> None:
    """4xx (other than 408/429) raise APIRejected on the first attempt, envelope kept."""
    body = error_body(status, type_, "is_required", "A severity is required", field)
    client, recorder = client_for(openapi, fake, sequence(httpx.Response(status, json=body)))
    with pytest.raises(APIRejected) as info:
        client.get_incident("1")
    error = info.value
    assert (error.status, error.type, error.request_id) == (status, type_, "req-123")
    assert error.fields == ([field] if field else [])
    assert error.errors[0].code == "is_required"
    assert len(recorder.requests) == 1
    assert fake.retry_sleeps == []
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


@pytest.mark.parametrize("status", [408, 425, 500, 502, 504])
def test_transient_statuses_are_retried(openapi: Conformance, fake: FakeTime, status: int) -> None:
    """408, 425 and 5xx are transient."""
    client, recorder = client_for(openapi, fake, sequence(unavailable(status), ok(SUCCESS)))
    client.get_incident("1")
    assert len(recorder.requests) == 2


def test_redirect_is_a_configuration_problem(openapi: Conformance, fake: FakeTime) -> None:
    """A 3xx is not followed (it would be a wrong base_url) and not retried."""
    redirect = httpx.Response(301, headers={"Location": "https://example.com/v2/incidents/1"})
    client, recorder = client_for(openapi, fake, sequence(redirect))
    with pytest.raises(APIRejected, match="base_url"):
        client.get_incident("1")
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>Bad gateway</html>", headers={"Content-Type": "text/html"}),
        httpx.Response(200, json={"incidents": "nope"}),
        httpx.Response(200, json={"incident": {"id": "only"}}),
        httpx.Response(200, content=b'{"incident": {"id": '),
        httpx.Response(
            502,
            text="<html>nginx</html>",
            headers={"Content-Type": "text/html", "X-Request-Id": "edge-1"},
        ),
    ],
)
def test_unreadable_bodies_are_transient(
    openapi: Conformance, fake: FakeTime, response: httpx.Response
) -> None:
    """HTML pages, cut or wrongly shaped JSON: APIUnavailable after the retries."""
    client, recorder = client_for(openapi, fake, sequence(response), retry_attempts=3)
    with pytest.raises(APIUnavailable) as info:
        client.get_incident("1")
    assert len(recorder.requests) == 3
    assert info.value.status == response.status_code
    if response.status_code == 502:
        assert info.value.request_id == "edge-1"
        assert "text/html body" in str(info.value)
    else:
        assert "unreadable" in str(info.value)


def test_stamina_hooks_skip_only_this_client(tmp_path: Path) -> None:
    """The composition root (make_client) silences stamina's process-wide per-retry hooks for
    this client only, once however many clients it builds; other users keep them."""
    before = get_on_retry_hooks()
    set_on_retry_hooks(None)  # stamina's defaults, as in a fresh process
    try:
        path = tmp_path / "automations.toml"
        path.write_text('[incident_io]\nbase_url = "http://127.0.0.1:9"\n')
        config = load_config(path)
        with build_client(config, SecretStr("k")) as first:
            hooks = get_on_retry_hooks()
            with build_client(config, SecretStr("k")):
                assert get_on_retry_hooks() == hooks  # idempotent: wrappers are not nested
    finally:
        set_on_retry_hooks(before)
    assert hooks
    assert all(isinstance(h, _SkipClientRetries) for h in hooks)
    assert not any(isinstance(h.hook, _SkipClientRetries) for h in hooks)  # type: ignore[attr-defined]
    assert stamina.instrumentation._data.guess_name(first._attempt) == RETRIED_CALLABLE


def test_other_stamina_users_still_log(fake: FakeTime, caplog: pytest.LogCaptureFixture) -> None:
    """A function retried elsewhere in the process still gets stamina's retry log line."""
    quiet_stamina_for_client()
    failures = iter([ValueError("once")])

    @stamina.retry(on=ValueError, attempts=2, wait_initial=0, wait_jitter=0)
    def flaky() -> str:
        for exc in failures:
            raise exc
        return "ok"

    caplog.set_level(logging.DEBUG)
    assert flaky() == "ok"
    assert [r.getMessage() for r in caplog.records if r.name == "stamina"] == [
        "stamina.retry_scheduled"
    ]


def test_the_backoff_between_attempts_is_the_policys_own() -> None:
    """RetryWaits passed in set the wait: ``initial`` doubling up to ``cap``, no jitter here."""
    policy = RetryPolicy(timeout=600.0, waits=RetryWaits(initial=2.0, cap=5.0, jitter=0))
    unavailable = APIUnavailable("503 Service Unavailable", status=503)
    waits = []
    for attempts in (1, 2, 3):
        call = CallState("GET", "/v2/incidents")
        call.attempts = attempts
        waits.append(policy.wait(call, unavailable))
    assert waits == [2.0, 4.0, 5.0]
    assert RetryPolicy().waits == RetryWaits(initial=0.5, cap=30.0, jitter=1.0)  # the product's
