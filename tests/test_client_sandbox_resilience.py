"""The real client against the faulty sandbox: retries, Retry-After, timeouts, drops, the bucket.

The sandbox injects the faults server-side (``/_sandbox/faults``) and logs every
attempt, so each test counts the attempts the client really made. Backoff
between retries is shrunk to milliseconds (each client is given ``FAST_WAITS``);
``Retry-After`` is not shrunk, so the storms below really cost the second the
server asks for.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
import stamina

from automations.errors import APIError, APIRejected, APIUnavailable
from automations.incidentio import (
    IncidentEdit,
    IncidentFilter,
    IncidentIOClient,
    TokenBucket,
)
from automations.incidentio.retries import RetryWaits
from tests import test_client_against_sandbox
from tests.sandbox_server import SandboxControl
from tests.test_client_against_sandbox import (
    SECRET,
    api_log,
    assert_no_secret,
    use_secret_key,
    watch_logs_for_key,
)


@pytest.fixture
def org(sandbox: SandboxControl) -> SandboxControl:
    return use_secret_key(sandbox)


@pytest.fixture(autouse=True)
def no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log line of every test here, DEBUG included, lacks the key."""
    yield from watch_logs_for_key(caplog)


FAST_WAITS = RetryWaits(initial=0.01, cap=0.05, jitter=0.01)


def make_client(base_url: str, **kwargs: Any) -> IncidentIOClient:
    """The sandbox client of test_client_against_sandbox, with millisecond backoff."""
    return test_client_against_sandbox.make_client(base_url, retry_waits=FAST_WAITS, **kwargs)


@pytest.fixture(autouse=True)
def real_retries() -> Iterator[None]:
    """Real retries (stamina not in test mode), each client with FAST_WAITS between them."""
    with stamina.set_testing(False):
        yield


def attempts_per_call(log: list[dict[str, Any]]) -> list[int]:
    """Sequential calls each end with one 200: split the log into runs ending in a 200."""
    runs, current = [], 0
    for entry in log:
        current += 1
        if entry["status"] == 200 and entry["fault"] is None:
            runs.append(current)
            current = 0
    assert current == 0, "the log ends with failed attempts"
    return runs


def walk(api: IncidentIOClient, page_size: int = 25) -> list[str]:
    return [i.id for i in api.iter_incidents(page_size=page_size)]


# --- transient failures are retried, within the bound --------------------------------


def test_30_percent_5xx_every_call_succeeds(org: SandboxControl) -> None:
    """With 30% of requests failing 503, every call (and a whole paged walk) still succeeds."""
    with make_client(org.base_url, retry_attempts=8) as api:
        clean = walk(api)
        org.clear_requests()
        org.set_faults(error_rate=0.3, error_status=503, seed=11)
        shown = [api.get_incident(str(n)).reference for n in range(1, 31)]
        faulty = walk(api)
        counts = api.counter
        log = api_log(org)
    assert shown == [f"INC-{n}" for n in range(1, 31)]
    assert faulty == clean
    assert len(set(faulty)) == len(faulty)
    pages = math.ceil(len(clean) / 25)
    runs = attempts_per_call(log)
    assert len(runs) == 30 + pages
    assert max(runs) <= 8
    failed = [e for e in log if e["status"] == 503]
    assert 0.15 * len(log) <= len(failed) <= 0.45 * len(log)
    assert {e["fault"] for e in failed} == {"status"}
    assert counts.count(status=503) == len(failed)
    assert counts.count(status=200) == 30 + 2 * pages  # the clean walk too


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_429_storm_waits_for_retry_after(
    org: SandboxControl, form: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A 1 s storm: one 429, a wait of about Retry-After (either form), then success."""
    with make_client(org.base_url) as api:
        api.list_severities()  # connect first, so only the storm is timed
        org.clear_requests()
        org.set_faults(rate_limit_storm={"seconds": 1, "retry_after_form": form})
        started = time.perf_counter()
        severities = api.list_severities()
        elapsed = time.perf_counter() - started
    assert [s.name for s in severities] == ["Minor", "Major", "Critical"]
    log = api_log(org)
    assert [e["status"] for e in log][-1] == 200
    storms = [e for e in log if e["status"] == 429]
    # honouring Retry-After means no hammering: with the millisecond backoff alone,
    # all 8 attempts would land inside the storm and the call would fail
    assert 1 <= len(storms) <= 2
    assert len(log) == len(storms) + 1
    assert 0.95 <= elapsed < 2.5
    assert "succeeded after" in caplog.text


def test_latency_beyond_the_timeout_is_retried(org: SandboxControl) -> None:
    """One answer slower than the client's timeout: that attempt times out, the retry works."""
    with make_client(org.base_url, timeout=0.5) as api:
        api.list_severities()
        org.clear_requests()
        org.set_faults(next=[{"kind": "latency", "seconds": 3.0}])
        started = time.perf_counter()
        incident = api.get_incident("3")
        elapsed = time.perf_counter() - started
        timeouts = api.counter.count(status="error")
    assert incident.reference == "INC-3"
    log = api_log(org)
    assert [e["path"] for e in log] == ["/v2/incidents/3"] * 2
    assert timeouts == 1
    assert 0.5 <= elapsed < 2.5  # gave up on the slow answer instead of waiting 3 s


def test_dropped_connections_are_retried(org: SandboxControl) -> None:
    """Two dropped connections, then an answer: three attempts for one call."""
    with make_client(org.base_url) as api:
        org.set_faults(next=[{"kind": "drop"}, {"kind": "drop"}])
        incident = api.get_incident("5")
        errors = api.counter.count(status="error")
    assert incident.reference == "INC-5"
    log = api_log(org)
    assert [e["fault"] for e in log] == ["drop", "drop", None]
    assert errors == 2


def test_drop_rate_during_a_paged_walk(org: SandboxControl) -> None:
    """30% of connections dropped: the walk still returns each incident exactly once."""
    with make_client(org.base_url) as api:
        clean = walk(api, page_size=10)
        org.clear_requests()
        org.set_faults(drop_rate=0.3, seed=5)
        faulty = walk(api, page_size=10)
    assert faulty == clean
    log = api_log(org)
    drops = [e for e in log if e["fault"] == "drop"]
    assert drops
    assert max(attempts_per_call(log)) <= 8
    assert len(log) - len(drops) == math.ceil(len(clean) / 10)


def test_edit_whose_answer_was_lost_is_not_resent(org: SandboxControl) -> None:
    """The edit is applied and its answer dropped: one POST, then APIUnavailable (unknown)."""
    with make_client(org.base_url) as api:
        org.set_faults(next=[{"kind": "drop", "when": "after"}])
        edit = IncidentEdit(name="Renamed despite the drop")
        with pytest.raises(APIUnavailable):
            api.edit_incident("7", edit, notify_incident_channel=False)
    assert org.incident("7")["name"] == "Renamed despite the drop"
    log = api_log(org)
    assert [(e["method"], e["fault"]) for e in log] == [("POST", "drop")]


def test_edit_answered_503_is_not_resent(org: SandboxControl) -> None:
    """Every other call is retried on a 503; the edit POST is sent once and reports the 503."""
    with make_client(org.base_url) as api:
        org.set_faults(next=[{"kind": "status", "status": 503}])
        with pytest.raises(APIUnavailable) as caught:
            api.edit_incident("7", IncidentEdit(name="Not now"), notify_incident_channel=True)
    assert caught.value.status == 503
    assert org.incident("7")["name"] != "Not now"
    assert [(e["method"], e["status"]) for e in api_log(org)] == [("POST", 503)]


def test_create_whose_answer_was_lost_creates_one_incident(org: SandboxControl) -> None:
    """The idempotency key makes the retried create return the incident created the first time."""
    before = httpx.get(f"{org.base_url}/_sandbox").json()["incidents"]
    with make_client(org.base_url) as api:
        severity = api.list_severities()[0]
        org.clear_requests()
        org.set_faults(next=[{"kind": "drop", "when": "after"}])
        created = api.create_incident(
            idempotency_key="resilience-create-1", visibility="public", severity_id=severity.id
        )
    after = httpx.get(f"{org.base_url}/_sandbox").json()["incidents"]
    assert after == before + 1
    assert org.incident(created.id)["id"] == created.id
    log = api_log(org)
    assert [e["fault"] for e in log] == ["drop", None]
    assert log[0]["body"]["idempotency_key"] == log[1]["body"]["idempotency_key"]


# --- permanent failures are not retried ---------------------------------------------


@dataclass(frozen=True)
class Rejection:
    call: Callable[[IncidentIOClient, dict[str, str]], object]
    status: int
    type: str
    field: str | None = None


REJECTIONS = {
    "404-incident": Rejection(
        lambda api, ids: api.get_incident("01ZZZZZZZZZZZZZZZZZZZZZZZZ"), 404, "not_found"
    ),
    "404-severity": Rejection(lambda api, ids: api.get_severity("01NOPE"), 404, "not_found"),
    "422-create-without-severity": Rejection(
        lambda api, ids: api.create_incident(idempotency_key="no-sev", visibility="public"),
        422,
        "validation_error",
        "severity_id",
    ),
    "422-edit-into-triage": Rejection(
        lambda api, ids: api.edit_incident(
            ids["live_incident"],
            IncidentEdit(incident_status_id=ids["triage"]),
            notify_incident_channel=False,
        ),
        422,
        "validation_error",
        "incident_status_id",
    ),
}


@pytest.mark.parametrize("name", list(REJECTIONS))
def test_4xx_is_not_retried(org: SandboxControl, name: str) -> None:
    """A 404 or 422 is raised as APIRejected after exactly one request."""
    case = REJECTIONS[name]
    with make_client(org.base_url) as api:
        statuses = api.list_incident_statuses()
        live = next(api.iter_incidents(IncidentFilter().status_category(one_of="live")))
        ids = {
            "triage": next(s.id for s in statuses if s.category == "triage"),
            "live_incident": live.id,
        }
        org.clear_requests()
        before = api.counter.total()
        with pytest.raises(APIRejected) as caught:
            case.call(api, ids)
        counted = api.counter.total() - before
    error = caught.value
    assert (error.status, error.type) == (case.status, case.type)
    if case.field is not None:
        assert error.fields == [case.field]
    log = api_log(org)
    assert len(log) == 1 == counted
    assert log[0]["status"] == case.status
    assert error.request_id == log[0]["request_id"]
    assert_no_secret(error)


def test_wrong_key_is_401_once_and_never_echoed(org: SandboxControl) -> None:
    """A key the sandbox does not accept: one 401, and neither key shows in the error."""
    wrong = "sbx_live_WRONGWRONGWRONG0000"
    with (
        IncidentIOClient(base_url=org.base_url, api_key=wrong) as api,
        pytest.raises(APIRejected) as caught,
    ):
        api.list_severities()
    assert caught.value.status == 401
    assert caught.value.type == "authentication_error"
    assert len(api_log(org)) == 1
    for text in (str(caught.value), repr(caught.value)):
        assert wrong not in text
    assert_no_secret(caught.value)


# --- the client-side token bucket ----------------------------------------------------


def test_requests_per_minute_holds_the_rate(org: SandboxControl) -> None:
    """600/min is 10/s after a burst of 10: 16 calls take at least 0.6 s."""
    calls = 16
    with make_client(org.base_url, requests_per_minute=600) as api:
        capacity = api.rate_limiter.capacity
        started = time.perf_counter()
        for _ in range(calls):
            api.list_severities()
        elapsed = time.perf_counter() - started
    minimum = (calls - capacity) / 10
    assert capacity == 10
    assert elapsed >= minimum - 0.05  # no upper bound: a loaded machine is only ever slower
    assert len(api_log(org)) == calls


def test_shared_bucket_holds_the_rate_across_clients(org: SandboxControl) -> None:
    """Two clients in two threads sharing one 600/min bucket go no faster than one."""
    bucket = TokenBucket(600)
    per_client = 10
    clients = [make_client(org.base_url, rate_limiter=bucket) for _ in range(2)]

    def run(api: IncidentIOClient) -> None:
        for _ in range(per_client):
            api.list_incident_types()

    threads = [threading.Thread(target=run, args=(api,)) for api in clients]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for api in clients:
        api.close()
    total = per_client * len(clients)
    minimum = (total - bucket.capacity) / 10
    # No faster than the rate; no upper bound and no exact count of waits: on a loaded
    # machine slow requests let the bucket refill, so fewer calls need to wait.
    assert elapsed >= minimum - 0.05
    assert bucket.waits > 0
    log = api_log(org)
    assert len(log) == total
    assert {e["status"] for e in log} == {200}
    span = datetime.fromisoformat(log[-1]["time"]) - datetime.fromisoformat(log[0]["time"])
    assert span.total_seconds() >= minimum - 0.15  # the server saw them spread out too


# --- the key never leaks, even when everything fails ---------------------------------


@pytest.mark.parametrize(
    ("faults", "options", "attempts"),
    [
        ({"error_rate": 1.0, "error_status": 503}, {}, 3),
        ({"drop_rate": 1.0}, {}, 3),
        ({"latency_seconds": 1.0}, {"timeout": 0.2}, 3),
        # Retry-After (30 s) is beyond the call's budget: give up at once, no sleep
        (
            {"rate_limit_storm": {"seconds": 30, "retry_after_form": "http-date"}},
            {"retry_timeout": 2.0},
            1,
        ),
    ],
    ids=["503", "drop", "timeout", "429-storm"],
)
def test_exhausted_retries_never_show_the_key(
    org: SandboxControl,
    caplog: pytest.LogCaptureFixture,
    faults: dict[str, Any],
    options: dict[str, float],
    attempts: int,
) -> None:
    """Every retried failure gives up after its attempts; error, logs and client show no key."""
    org.set_faults(**faults)
    started = time.perf_counter()
    with make_client(org.base_url, retry_attempts=3, **options) as api:
        with pytest.raises(APIUnavailable) as caught:
            api.list_severities()
        texts = [repr(api), repr(vars(api)), repr(api.rate_limiter), repr(api.counter)]
    error: APIError = caught.value
    assert_no_secret(error)
    for text in texts:
        assert SECRET not in text
    assert time.perf_counter() - started < 2.0
    assert len(api_log(org)) == attempts
    assert "failed after" in caplog.text
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    assert SECRET not in json.dumps(org.requests())
