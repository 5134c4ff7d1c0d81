"""Fault injection and the rate limit, seen by a real HTTP client."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime

import httpx
import pytest

from tests.openapi_conformance import Conformance
from tests.sandbox_server import SandboxControl


@pytest.fixture
def api(sandbox: SandboxControl) -> Iterator[httpx.Client]:
    with sandbox.api() as client:
        yield client


def test_status_fault(api: httpx.Client, sandbox: SandboxControl, openapi: Conformance) -> None:
    """A queued status fault answers once with that status in the envelope, then clears."""
    sandbox.set_faults(next=[{"kind": "status", "status": 503}])
    failed = api.get("/v2/incidents")
    assert failed.status_code == 503
    openapi.validate_response("GET", "/v2/incidents", 503, failed.json())
    assert failed.json()["type"] == "api_error"
    assert api.get("/v2/incidents").status_code == 200


def test_rate_limit_fault_forms(api: httpx.Client, sandbox: SandboxControl) -> None:
    """rate_limit faults give 429 with Retry-After in seconds or as an HTTP date."""
    sandbox.set_faults(
        next=[
            {"kind": "rate_limit", "retry_after": 2, "form": "seconds"},
            {"kind": "rate_limit", "retry_after": 3, "form": "http-date"},
        ]
    )
    seconds = api.get("/v1/severities")
    assert seconds.status_code == 429
    assert seconds.headers["retry-after"] == "2"
    assert seconds.json()["rate_limit"]["retry_after"].endswith("Z")
    dated = api.get("/v1/severities")
    assert dated.status_code == 429
    when = parsedate_to_datetime(dated.headers["retry-after"])
    server_now = parsedate_to_datetime(dated.headers["date"])
    assert 2 <= (when - server_now).total_seconds() <= 4
    assert api.get("/v1/severities").status_code == 200


def test_drop_is_a_transport_error(api: httpx.Client, sandbox: SandboxControl) -> None:
    """A drop breaks the connection mid-response; the next request works."""
    sandbox.set_faults(next=[{"kind": "drop"}])
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.get("/v2/incidents")
    assert api.get("/v2/incidents").status_code == 200
    assert [r["fault"] for r in sandbox.requests()] == ["drop", None]


def test_drop_after_processing_applies_the_edit(api: httpx.Client, sandbox: SandboxControl) -> None:
    """``when: after`` loses the answer but keeps the change (for reconcile tests)."""
    sandbox.set_faults(next=[{"kind": "drop", "when": "after"}])
    body = {"incident": {"name": "Renamed in the dark"}, "notify_incident_channel": False}
    with pytest.raises(httpx.TransportError):
        api.post("/v2/incidents/7/actions/edit", json=body)
    assert api.get("/v2/incidents/7").json()["incident"]["name"] == "Renamed in the dark"


def test_latency(api: httpx.Client, sandbox: SandboxControl) -> None:
    """A latency fault delays one answer by at least its seconds."""
    sandbox.set_faults(next=[{"kind": "latency", "seconds": 0.3}])
    started = time.perf_counter()
    assert api.get("/v1/severities").status_code == 200
    assert time.perf_counter() - started >= 0.3


@pytest.mark.parametrize("body", ["invalid_json", "html", "missing_fields", "unknown_enum"])
def test_malformed_bodies(api: httpx.Client, sandbox: SandboxControl, body: str) -> None:
    """Each malformed body kind is served with 200 and broken in its own way."""
    sandbox.set_faults(next=[{"kind": "malformed", "body": body}])
    response = api.get("/v2/incidents")
    assert response.status_code == 200
    if body == "invalid_json":
        with pytest.raises(json.JSONDecodeError):
            response.json()
    elif body == "html":
        assert response.headers["content-type"].startswith("text/html")
    elif body == "missing_fields":
        assert all("id" not in incident for incident in response.json()["incidents"])
    else:
        categories = {i["incident_status"]["category"] for i in response.json()["incidents"]}
        assert categories == {"stabilising"}
        assert len(response.json()["incidents"]) == 25


def test_paths_filter(api: httpx.Client, sandbox: SandboxControl) -> None:
    """With ``paths``, only matching API paths consume and suffer queued faults."""
    sandbox.set_faults(next=[{"kind": "status", "status": 500}], paths=["/v2/incidents"])
    assert api.get("/v1/severities").status_code == 200
    assert api.get("/v2/incidents/3").status_code == 500
    assert api.get("/v2/incidents/3").status_code == 200


def test_probabilistic_faults_repeat_for_a_seed(api: httpx.Client, sandbox: SandboxControl) -> None:
    """error_rate draws from a seeded RNG: the same settings give the same sequence."""

    def run() -> list[int]:
        sandbox.set_faults(error_rate=0.3, error_status=502, seed=7)
        return [api.get("/v1/severities").status_code for _ in range(30)]

    first, second = run(), run()
    assert first == second
    assert set(first) == {200, 502}
    sandbox.clear_faults()
    assert api.get("/v1/severities").status_code == 200


def test_drop_rate(sandbox: SandboxControl) -> None:
    """drop_rate=1 drops every API request."""
    sandbox.set_faults(drop_rate=1.0)
    with sandbox.api() as client, pytest.raises(httpx.TransportError):
        client.get("/v1/severities")


def test_rate_limit_storm(api: httpx.Client, sandbox: SandboxControl) -> None:
    """A storm answers 429 for its duration, then stops."""
    sandbox.set_faults(rate_limit_storm={"seconds": 1, "retry_after_form": "seconds"})
    stormy = api.get("/v1/severities")
    assert stormy.status_code == 429
    assert stormy.headers["retry-after"] == "1"
    time.sleep(1.1)
    assert api.get("/v1/severities").status_code == 200


def test_token_bucket(sandbox: SandboxControl, openapi: Conformance) -> None:
    """With 60/min, a burst of 61 gets a 429 with Retry-After and X-RateLimit headers."""
    sandbox.reset(incidents=10, rate_limit_per_minute=60)
    with sandbox.api() as client:
        answers = [client.get("/v1/severities") for _ in range(61)]
    first, last = answers[0], answers[-1]
    assert [a.status_code for a in answers[:60]] == [200] * 60
    assert first.headers["x-ratelimit-limit"] == "60, 60;window=60"
    assert first.headers["x-ratelimit-remaining"] == "59"
    assert first.headers["x-ratelimit-used"] == "1"
    assert int(first.headers["x-ratelimit-reset"]) >= datetime.now().timestamp() - 5
    assert last.status_code == 429
    assert int(last.headers["retry-after"]) >= 1
    assert last.headers["x-ratelimit-remaining"] == "0"
    body = last.json()
    openapi.validate_response("GET", "/v1/severities", 429, body)
    assert body["type"] == "rate_limit_reached"
    assert body["rate_limit"]["limit"] == 60
    assert body["rate_limit"]["remaining"] == 0
    # control routes are neither authenticated nor limited
    assert httpx.get(f"{sandbox.base_url}/_sandbox/clock").status_code == 200


def test_bucket_refills(sandbox: SandboxControl) -> None:
    """Tokens come back continuously (here 10/s), not in a fixed window."""
    sandbox.reset(incidents=10, rate_limit_per_minute=600)
    with sandbox.api() as client:
        while client.get("/v1/severities").status_code != 429:
            pass
        time.sleep(0.25)
        assert client.get("/v1/severities").status_code == 200
