"""Broken or hostile API answers, handled at the client boundary.

Endless cursors, a malformed incident in a good page, the same incident on
two pages, a Date header from another year, a visibility nobody expected:
each is served by a reverse proxy in front of the sandbox (tests/hostile_proxy.py)
and must cost at most one cycle and one clear line, never a wrong edit.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from pydantic import SecretStr

from automations.clock import host_now
from automations.config import load_config
from automations.daemon import run_once
from automations.demo import demo_config
from automations.digest.content import visible
from automations.errors import APIError, ClockSkew, ConfigError, TooManyPages
from automations.incidentio import Incident, IncidentIOClient, TokenBucket
from automations.incidentio.pagination import MAX_PAGES
from automations.metrics import Metrics
from tests.engine_harness import Harness
from tests.hostile_proxy import Answer, Exchange, HostileProxy
from tests.sandbox_server import SandboxControl
from tests.secret_values import SANDBOX_KEY
from tests.test_client_models import incident, incident_update
from tests.test_engine_sandbox import ESCALATE

H = timedelta(hours=1)
ESCALATE_BRAKED = ESCALATE.replace("notify_incident_channel = true", "max_actions_per_cycle = 3")


def _client(base_url: str, **kwargs: Any) -> IncidentIOClient:
    return IncidentIOClient(base_url=base_url, api_key=SecretStr(SANDBOX_KEY), **kwargs)


def _incidents_only(answer: Any) -> Any:
    """Wrap a hook so it only touches GET /v2/incidents."""

    def hook(exchange: Exchange, *rest: Any) -> Any:
        if exchange.method == "GET" and exchange.path == "/v2/incidents":
            return answer(exchange, *rest)
        return rest[0] if rest else None

    return hook


# --- endless pagination ----------------------------------------------------------------


def _fresh_cursor_forever(proxy: HostileProxy, *, total: bool) -> None:
    """Page one again and again, each time with a cursor never seen before."""
    cursors = itertools.count(1)

    def answer(exchange: Exchange) -> Answer:
        page = proxy.forward(exchange, after=None)
        body = page.json_body()
        body["pagination_meta"]["after"] = f"01FRESH{next(cursors):08d}"
        if not total:
            body["pagination_meta"].pop("total_record_count", None)
        return page.with_json(body)

    proxy.answer = _incidents_only(answer)


def test_fresh_cursors_forever_stop_at_a_cap_derived_from_the_total(
    sandbox: SandboxControl, hostile: HostileProxy
) -> None:
    """N records in pages of 50 is ceil(N/50) pages: it gives up 2 pages later, saying why."""
    with _client(sandbox.base_url) as direct:
        total = next(direct.iter_incident_pages(page_size=50)).total_record_count
    assert total is not None
    assert total > 150  # several pages' worth
    _fresh_cursor_forever(hostile, total=True)
    with _client(hostile.url) as client, pytest.raises(TooManyPages) as info:
        list(client.iter_incident_pages(page_size=50))
    assert isinstance(info.value, APIError)
    pages = math.ceil(total / 50) + 2
    assert len(hostile.requests_to("GET", "/v2/incidents")) == pages
    message = str(info.value)
    assert "GET /v2/incidents" in message
    assert f"{total} records" in message
    assert f"{pages} pages" in message


def test_fresh_cursors_without_a_total_stop_at_the_absolute_cap() -> None:
    """No total_record_count: MAX_PAGES pages at most, however many cursors the server invents."""
    requests = 0

    def endless(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        update = incident_update(requests)
        meta = {"page_size": 1, "after": update["id"]}
        return httpx.Response(200, json={"incident_updates": [update], "pagination_meta": meta})

    client = IncidentIOClient(
        api_key=SANDBOX_KEY,
        transport=httpx.MockTransport(endless),
        rate_limiter=TokenBucket(6_000_000, burst=MAX_PAGES),
        retry_attempts=1,
    )
    with client, pytest.raises(TooManyPages, match=f"{MAX_PAGES} pages"):
        list(client.iter_incident_updates())
    assert requests == MAX_PAGES


def test_endless_pagination_fails_the_cycle_with_one_line(
    harness: Harness, hostile: HostileProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """The cycle ends with one ERROR line naming the cause; no edit is made."""
    harness.write(ESCALATE, base_url=hostile.url)
    harness.add("Stuck", age=3 * H)
    runtime = harness.runtime()
    _fresh_cursor_forever(hostile, total=True)
    caplog.set_level(logging.INFO, logger="automations")
    try:
        (report,) = run_once(runtime)
    finally:
        runtime.close()
    assert report.error is not None
    assert "TooManyPages" in report.error
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(problems) == 1, [r.getMessage() for r in problems]
    assert "TooManyPages" in problems[0].getMessage()
    assert harness.posts() == []


# --- one malformed incident -----------------------------------------------------------


def _corrupt(*changes: tuple[int, str, Any]) -> Any:
    """Change (index, field, value) on incidents of each list page; value None drops the field."""

    def rewrite(exchange: Exchange, answer: Answer) -> Answer:
        body = answer.json_body()
        for index, name, value in changes:
            if index < len(body["incidents"]):
                if value is None:
                    body["incidents"][index].pop(name, None)
                else:
                    body["incidents"][index][name] = value
        return answer.with_json(body)

    return _incidents_only(rewrite)


def test_a_malformed_incident_is_skipped_and_reported_not_the_page(
    sandbox: SandboxControl, hostile: HostileProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """A missing field, a wrong type and a missing ID: three warnings, the rest of the page kept."""
    sandbox.reset(incidents=10)
    hostile.rewrite = _corrupt((1, "created_at", None), (4, "name", 42), (6, "id", None))
    with _client(sandbox.base_url) as direct:
        expected = [i.id for i in direct.iter_incidents()]
    with _client(hostile.url) as client:
        got = list(client.iter_incidents())
        malformed = client.counter.malformed()
        metrics = Metrics(stale_after=timedelta(minutes=5))
        metrics.watch_client(client)
        exported = generate_latest(metrics.registry).decode()
    broken = {expected[1], expected[4], expected[6]}
    assert len(got) == 7
    assert {i.id for i in got} == set(expected) - broken
    assert malformed == 3
    series = 'automations_api_malformed_records_total{method="GET",route="/v2/incidents"} 3.0'
    assert series in exported
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3, warnings
    assert any(expected[1] in w and "created_at" in w for w in warnings)
    assert any(expected[4] in w and "name" in w for w in warnings)
    assert any("without an ID" in w and "id" in w for w in warnings)
    assert len(hostile.requests_to("GET", "/v2/incidents")) == 1  # not retried as transient


def test_many_malformed_incidents_are_named_in_a_bounded_number_of_lines(
    sandbox: SandboxControl, hostile: HostileProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """Eight of ten malformed: five named lines and one for the rest; the two good ones kept."""
    sandbox.reset(incidents=10)
    hostile.rewrite = _corrupt(*((n, "created_at", None) for n in range(8)))
    with _client(hostile.url) as client:
        assert len(list(client.iter_incidents())) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 6, warnings
    assert "3 more malformed incidents" in warnings[-1]


def test_a_page_with_nothing_readable_still_fails(
    sandbox: SandboxControl, hostile: HostileProxy
) -> None:
    """Every incident malformed is the API's shape changing: the page fails, loudly, as before."""
    sandbox.reset(incidents=3)
    hostile.rewrite = _corrupt(*((n, "created_at", None) for n in range(3)))
    with _client(hostile.url, retry_attempts=1) as client, pytest.raises(APIError) as info:
        list(client.iter_incidents())
    assert "unreadable" in str(info.value)
    assert "created_at" in str(info.value)


def test_a_malformed_incident_does_not_block_the_others(
    harness: Harness, hostile: HostileProxy
) -> None:
    """A cycle still escalates every well-formed incident on the page."""
    harness.write(ESCALATE, base_url=hostile.url)
    stuck = [harness.add(f"Stuck {n}", age=3 * H) for n in range(3)]
    hostile.rewrite = _corrupt((0, "incident_status", "live"))  # newest first: Stuck 2
    (report,) = harness.cycle()
    assert report.ok, report.line()
    assert report.applied == 2
    assert [harness.severity(i["id"]) for i in stuck] == ["Major", "Major", "Minor"]


# --- the same incident on two pages ------------------------------------------------------


def _every_page_twice(proxy: HostileProxy) -> None:
    """Page one, then page one again as 'page two' (a server whose cursor slipped)."""

    def answer(exchange: Exchange) -> Answer:
        again = dict(exchange.query).get("after") == "01AGAIN"
        page = proxy.forward(exchange, after=None)
        body = page.json_body()
        if again:
            body["pagination_meta"].pop("after", None)
        else:
            body["pagination_meta"]["after"] = "01AGAIN"
        return page.with_json(body)

    proxy.answer = _incidents_only(answer)


def test_an_incident_repeated_across_pages_is_yielded_once(
    sandbox: SandboxControl, hostile: HostileProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """Each incident ID once per listing, and one warning for the whole listing."""
    sandbox.reset(incidents=5)
    _every_page_twice(hostile)
    with _client(hostile.url) as client:
        ids = [i.id for i in client.iter_incidents()]
    assert len(ids) == 5
    assert len(set(ids)) == 5
    assert len(hostile.requests_to("GET", "/v2/incidents")) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "5 incidents" in warnings[0]


def test_repeated_incidents_inflate_neither_plan_nor_brake(
    harness: Harness, hostile: HostileProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """Three due incidents served twice: three planned, and the brake (3) does not trip."""
    harness.write(ESCALATE_BRAKED, base_url=hostile.url)
    for n in range(3):
        harness.add(f"Stuck {n}", age=3 * H)
    _every_page_twice(hostile)
    (report,) = harness.cycle()
    assert report.planned == 3
    assert report.applied == 3
    assert report.summary()["braked"] == 0
    assert "SAFETY BRAKE" not in caplog.text


# --- a Date header from another year ---------------------------------------------------------


def _date_ahead(proxy: HostileProxy, ahead: timedelta) -> None:
    def rewrite(exchange: Exchange, answer: Answer) -> Answer:
        when = host_now() + ahead
        return Answer(
            answer.status,
            {**answer.headers, "date": format_datetime(when, usegmt=True)},
            answer.body,
        )

    proxy.rewrite = rewrite


def test_a_date_years_away_fails_the_call_and_moves_no_clock(hostile: HostileProxy) -> None:
    """Beyond max_clock_skew the answer is refused, and its Date is not adopted as 'now'."""
    _date_ahead(hostile, timedelta(days=3 * 365))
    with _client(hostile.url, max_clock_skew=timedelta(hours=24)) as client:
        with pytest.raises(ClockSkew) as info:
            client.list_severities()
        assert client.server_time is None
    assert isinstance(info.value, APIError)
    message = str(info.value)
    assert "ahead of this host" in message
    assert "max_clock_skew" in message
    assert len(hostile.requests_to("GET", "/v1/severities")) == 1  # not retried


def test_a_date_within_the_bound_is_followed(hostile: HostileProxy) -> None:
    """A server a few hours off (a host with a wrong timezone) is still the clock to follow."""
    _date_ahead(hostile, timedelta(hours=5))
    with _client(hostile.url, max_clock_skew=timedelta(hours=24)) as client:
        client.list_severities()
        assert client.server_time is not None
        assert abs(client.server_time - (host_now() + 5 * H)) < timedelta(minutes=1)


def test_a_skewed_api_clock_makes_no_edits(harness: Harness, hostile: HostileProxy) -> None:
    """An hour-old incident is not escalated because a Date header says it is 2029."""
    harness.write(ESCALATE, base_url=hostile.url)
    young = harness.add("Young", age=1 * H)
    runtime = harness.runtime()
    _date_ahead(hostile, timedelta(days=3 * 365))
    try:
        (report,) = run_once(runtime)
    finally:
        runtime.close()
    assert report.error is not None
    assert "ClockSkew" in report.error
    assert harness.posts() == []
    assert harness.severity(young["id"]) == "Minor"


def test_once_refuses_a_skewed_api_clock_in_one_line(
    harness: Harness, hostile: HostileProxy
) -> None:
    """The operator sees one line naming both clocks and the setting, exit 1, no traceback."""
    harness.write(ESCALATE, base_url=hostile.url)
    _date_ahead(hostile, timedelta(days=3 * 365))
    result = harness.cli("once")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "max_clock_skew" in result.stderr


def test_max_clock_skew_is_configurable(tmp_path: Path) -> None:
    """A duration, "off", or a clear error naming the key; the demo turns it off."""
    path = tmp_path / "a.toml"
    defaults = load_config(_write(path, ""))
    assert defaults.incident_io.max_clock_skew == timedelta(hours=24)
    assert load_config(_write(path, 'max_clock_skew = "7d"')).incident_io.max_clock_skew == (
        timedelta(days=7)
    )
    off = load_config(_write(path, 'max_clock_skew = "off"'))
    assert off.incident_io.max_clock_skew is None
    with pytest.raises(ConfigError, match=r"incident_io\.max_clock_skew"):
        load_config(_write(path, 'max_clock_skew = "a day"'))
    demo = demo_config(defaults, base_url="http://127.0.0.1:1", state_dir=tmp_path, smtp_port=1)
    assert demo.incident_io.max_clock_skew is None  # its sandbox clock runs fast on purpose


def _write(path: Path, line: str) -> Path:
    path.write_text(f"[incident_io]\n{line}\n[store]\npath = 'x.db'\n")
    return path


# --- a visibility nobody expected -----------------------------------------------------------


@pytest.mark.parametrize("value", ["internal", "PRIVATE", "Public", "", "restricted"])
def test_anything_not_exactly_public_is_private(value: str) -> None:
    """Fail closed: an unknown visibility is private, so a digest without private ones drops it."""
    unknown = Incident.model_validate(incident(1, visibility=value))
    public = Incident.model_validate(incident(2, visibility="public"))
    assert unknown.is_private
    assert not public.is_private
    shown = visible([unknown, public], include_private=False, include_test=False)
    assert [i.id for i in shown] == [public.id]


def test_a_missing_visibility_is_private() -> None:
    """The API always sends it; when it does not, nothing is shown that might be private."""
    body = incident(1)
    del body["visibility"]
    assert Incident.model_validate(body).is_private


def test_an_unknown_visibility_from_the_api_is_private(
    sandbox: SandboxControl, hostile: HostileProxy
) -> None:
    """Read through the client: a new visibility value parses, and counts as private."""
    sandbox.reset(incidents=3)
    hostile.rewrite = _corrupt(*((n, "visibility", "org_only") for n in range(3)))
    with _client(hostile.url) as client:
        incidents = list(client.iter_incidents())
    assert len(incidents) == 3
    assert all(i.is_private for i in incidents)
    assert json.dumps([i.visibility for i in incidents]).count("org_only") == 3
