"""Escalation paths and escalations end to end: the client against the sandbox over HTTP.

Includes POST /v2/escalations' own limit of 60 requests a minute: the sandbox
answers 429 past it, and the client's second token bucket keeps under it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import stamina

from automations.errors import APIRejected
from automations.incidentio import IncidentIOClient, TokenBucket
from automations.incidentio.caller import ESCALATIONS_PER_MINUTE, ESCALATIONS_ROUTE
from automations.incidentio.oncall import EscalationPath, EscalationStatus
from automations.sandbox.ratelimit import RateLimiter
from tests.openapi_conformance import Conformance
from tests.sandbox_server import SandboxControl
from tests.test_client_against_sandbox import (
    SECRET,
    RecordingTransport,
    api_log,
    make_client,
    use_secret_key,
    watch_logs_for_key,
)
from tests.test_client_models import FakeTime
from tests.test_sandbox_required_keys import Obj, problems_in
from tests.test_schedules import steady

PATHS = "/v2/escalation_paths"
ROUTE_LIMIT = 60  # POST /v2/escalations, per key and minute (section 0)


@pytest.fixture
def org(sandbox: SandboxControl) -> SandboxControl:
    return use_secret_key(sandbox)


@pytest.fixture
def client(org: SandboxControl) -> Iterator[IncidentIOClient]:
    """A client whose escalations bucket does not pace (the pacing tests bring their own)."""
    fast = TokenBucket(60_000, burst=100)
    with make_client(org.base_url, escalations_rate_limiter=fast) as c:
        yield c


@pytest.fixture
def api(org: SandboxControl) -> Iterator[httpx.Client]:
    with org.api(SECRET) as c:
        yield c


@pytest.fixture(autouse=True)
def no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log line of every test here, DEBUG included, lacks the key."""
    yield from watch_logs_for_key(caplog)


def paths(client: IncidentIOClient) -> dict[str, EscalationPath]:
    return {p.name: p for p in client.iter_escalation_paths()}


def on_call(client: IncidentIOClient, schedule_name: str) -> set[str]:
    schedule = next(s for s in client.iter_schedules() if s.name == schedule_name)
    return {u.id for u in schedule.on_call}


def admin_id(client: IncidentIOClient) -> str:
    return next(u.id for u in client.iter_users() if u.role == "administrator")


# --- escalation paths -------------------------------------------------------------------


def test_paths_conform_and_name_who_is_paged_now(
    org: SandboxControl, client: IncidentIOClient, openapi: Conformance
) -> None:
    """Two seeded paths; current_responders are their first level's schedules' on-call and users."""
    steady(org, client)
    transport = RecordingTransport()
    with make_client(org.base_url, transport=transport) as recorded:
        found = {p.name: p for p in recorded.iter_escalation_paths()}
    assert sorted(found) == ["Payments urgent", "Platform primary"]
    for request, response in transport.exchanges:
        openapi.validate_request("GET", PATHS, request.url.params.multi_items())
        body = response.json()
        openapi.validate_response("GET", PATHS, response.status_code, body)
        assert problems_in(body, Obj("EscalationsListPathsResultV2")) == []
    platform, payments = found["Platform primary"], found["Payments urgent"]
    assert {p.kind for p in found.values()} == {"standalone"}
    assert {u.id for u in platform.current_responders} == on_call(client, "Platform primary")
    assert {u.id for u in payments.current_responders} == on_call(client, "Payments on-call") | {
        admin_id(client)
    }
    first = platform.path[0]
    assert first.type == "level"
    assert first.level is not None
    assert [t.type for t in first.level.targets] == ["schedule"]
    assert platform.path[-1].type == "repeat"


def test_current_responders_follow_the_sandbox_clock(
    org: SandboxControl, client: IncidentIOClient
) -> None:
    """Past the Platform handover the path pages the next person on call."""
    now = steady(org, client)
    schedule = next(s for s in client.iter_schedules() if s.name == "Platform primary")
    (shift,) = schedule.current_shifts
    before = {u.id for u in paths(client)["Platform primary"].current_responders}
    org.advance_clock((shift.end_at - now + timedelta(minutes=1)).total_seconds())
    after = {u.id for u in paths(client)["Platform primary"].current_responders}
    assert after != before
    assert after == on_call(client, "Platform primary")


def test_paths_page_by_after(
    client: IncidentIOClient, org: SandboxControl, api: httpx.Client
) -> None:
    """page_size=1 follows ``after``; above 25 is refused by the client and the sandbox."""
    org.clear_requests()
    names = [p.name for p in client.iter_escalation_paths(page_size=1)]
    assert names == ["Platform primary", "Payments urgent"]
    log = api_log(org, PATHS)
    queries = [dict(map(tuple, r["query_pairs"])) for r in log]
    assert [q.get("after") for q in queries] == [None, paths(client)["Platform primary"].id]
    with pytest.raises(ValueError, match="maximum of 25"):
        client.iter_escalation_paths(page_size=26)
    response = api.get(PATHS, params={"page_size": "26"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["source"]["field"] == "page_size"


# --- escalations ---------------------------------------------------------------------------


def test_escalating_a_path_pages_its_responders_and_conforms(
    org: SandboxControl, client: IncidentIOClient, openapi: Conformance
) -> None:
    """201 with a triggered escalation naming the path, its incident and whom it notified."""
    steady(org, client)
    platform = paths(client)["Platform primary"]
    incident = org.add_incident(name="Database down", severity="Critical")
    transport = RecordingTransport()
    with make_client(org.base_url, transport=transport) as recorded:
        escalation = recorded.create_escalation(
            idempotency_key="esc-1",
            title="Database down",
            escalation_path_id=platform.id,
            description="Primary **unreachable**",
            incident_id=incident["id"],
        )
    ((request, response),) = transport.exchanges
    body = json.loads(request.content)
    openapi.validate_request("POST", ESCALATIONS_ROUTE, (), body)
    assert body == {
        "idempotency_key": "esc-1",
        "title": "Database down",
        "escalation_path_id": platform.id,
        "description": "Primary **unreachable**",
        "incident_id": incident["id"],
    }
    assert response.status_code == 201
    openapi.validate_response("POST", ESCALATIONS_ROUTE, 201, response.json())
    assert problems_in(response.json(), Obj("EscalationsCreateResultV2")) == []
    assert escalation.status == EscalationStatus.TRIGGERED
    assert escalation.title == "Database down"
    assert escalation.description == "Primary **unreachable**"
    assert escalation.escalation_path_id == platform.id
    assert {u.id for u in escalation.notified} == {u.id for u in platform.current_responders}
    (related,) = escalation.related_incidents
    assert (related.id, related.reference) == (incident["id"], incident["reference"])
    assert related.status_category == "active"


def test_escalating_users_pages_them(client: IncidentIOClient, openapi: Conformance) -> None:
    """user_ids page exactly those users; no path ID is sent back."""
    users = [u for u in client.iter_users() if u.role == "responder"][:2]
    escalation = client.create_escalation(
        idempotency_key="esc-users", title="Look at this", user_ids=[u.id for u in users]
    )
    assert [u.id for u in escalation.notified] == [u.id for u in users]
    assert escalation.escalation_path_id is None
    assert escalation.description == ""


def test_a_reused_key_returns_the_existing_escalation(
    client: IncidentIOClient, org: SandboxControl
) -> None:
    """The same key twice is one escalation: same ID, the first title; both answers are 201."""
    admin = admin_id(client)
    first = client.create_escalation(idempotency_key="same", title="First", user_ids=[admin])
    again = client.create_escalation(
        idempotency_key="same",
        title="Second",
        escalation_path_id=paths(client)["Payments urgent"].id,
    )
    assert again.id == first.id
    assert again.title == "First"
    assert again.escalation_path_id is None
    statuses = [r["status"] for r in api_log(org, ESCALATIONS_ROUTE)]
    assert statuses == [201, 201]


BAD_ESCALATIONS = [
    ({"title": "t", "user_ids": ["{user}"]}, "is_required", "idempotency_key"),
    ({"idempotency_key": "b1", "user_ids": ["{user}"]}, "is_required", "title"),
    ({"idempotency_key": "b2", "title": "t"}, "invalid_value", "escalation_path_id"),
    ({"idempotency_key": "b3", "title": "t", "user_ids": ["{user}"],
      "escalation_path_id": "{path}"}, "invalid_value", "escalation_path_id"),
    ({"idempotency_key": "b4", "title": "t", "escalation_path_id": "01NOPE"}, "invalid_value",
     "escalation_path_id"),
    ({"idempotency_key": "b5", "title": "t", "user_ids": []}, "invalid_value", "user_ids"),
    ({"idempotency_key": "b6", "title": "t", "user_ids": ["01NOPE"]}, "invalid_value", "user_ids"),
    ({"idempotency_key": "b7", "title": "t", "user_ids": ["{user}"], "incident_id": "01NOPE"},
     "invalid_value", "incident_id"),
    ({"idempotency_key": "b8", "title": "", "user_ids": ["{user}"]}, "invalid_value", "title"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "code", "field"), BAD_ESCALATIONS)
def test_bad_escalations_are_422_naming_the_key(
    client: IncidentIOClient,
    api: httpx.Client,
    openapi: Conformance,
    body: dict[str, Any],
    code: str,
    field: str,
) -> None:
    """Each bad body is a 422 envelope whose source.field is the offending key; none is created."""
    fill = {"{user}": admin_id(client), "{path}": paths(client)["Platform primary"].id}
    body = {k: [fill.get(x, x) for x in v] if isinstance(v, list) else fill.get(v, v)
            for k, v in body.items()}  # fmt: skip
    response = api.post(ESCALATIONS_ROUTE, json=body)
    assert response.status_code == 422
    envelope = response.json()
    openapi.validate_response("POST", ESCALATIONS_ROUTE, 422, envelope)
    assert envelope["errors"][0]["code"] == code
    assert envelope["errors"][0]["source"] == {"field": field, "pointer": f"/{field}"}
    # a body that was refused claimed nothing: its key still creates
    if "idempotency_key" in body:
        admin = fill["{user}"]
        retry = {"idempotency_key": body["idempotency_key"], "title": "ok", "user_ids": [admin]}
        assert api.post(ESCALATIONS_ROUTE, json=retry).json()["escalation"]["title"] == "ok"


def test_someone_who_has_left_cannot_be_paged(client: IncidentIOClient) -> None:
    """An inactive user in user_ids is a 422 on user_ids, not a page to nobody."""
    gone = next(u for u in client.iter_users(include_inactive=True) if u.is_active is False)
    with pytest.raises(APIRejected) as refused:
        client.create_escalation(idempotency_key="gone", title="t", user_ids=[gone.id])
    assert refused.value.fields == ["user_ids"]
    assert "not active" in refused.value.errors[0].message


def test_the_client_refuses_a_body_without_exactly_one_target(
    client: IncidentIOClient, org: SandboxControl
) -> None:
    """Both a path and users, or neither: a ValueError before anything is sent."""
    org.clear_requests()
    with pytest.raises(ValueError, match="exactly one of escalation_path_id or user_ids"):
        client.create_escalation(idempotency_key="x", title="t")
    with pytest.raises(ValueError, match="exactly one of escalation_path_id or user_ids"):
        client.create_escalation(
            idempotency_key="x", title="t", escalation_path_id="01P", user_ids=["01U"]
        )
    assert api_log(org, ESCALATIONS_ROUTE) == []


def test_an_unknown_incident_is_rejected_not_retried(
    client: IncidentIOClient, org: SandboxControl
) -> None:
    """A 422 is permanent: one request, APIRejected naming incident_id."""
    with pytest.raises(APIRejected) as refused:
        client.create_escalation(
            idempotency_key="x", title="t", user_ids=[admin_id(client)], incident_id="01NOPE"
        )
    assert refused.value.fields == ["incident_id"]
    assert len(api_log(org, ESCALATIONS_ROUTE)) == 1


# --- the route's own rate limit ---------------------------------------------------------


def test_the_sandbox_allows_60_escalations_a_minute(
    client: IncidentIOClient, api: httpx.Client, openapi: Conformance
) -> None:
    """A burst gets 60 (plus what refilled meanwhile), then 429 with Retry-After; other routes
    are unaffected."""
    body = {"title": "burst", "user_ids": [admin_id(client)]}
    started = time.monotonic()
    answers = []
    for n in range(ROUTE_LIMIT + 20):
        answers.append(api.post(ESCALATIONS_ROUTE, json={**body, "idempotency_key": f"b{n}"}))
        if answers[-1].status_code == 429:
            break
    elapsed = time.monotonic() - started
    created = [a for a in answers if a.status_code == 201]
    assert ROUTE_LIMIT <= len(created) <= ROUTE_LIMIT + math.ceil(elapsed)
    assert created[0].headers["x-ratelimit-limit"] == "60, 1200;window=60, 60;window=60"
    limited = answers[-1]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    envelope = limited.json()
    openapi.validate_response("POST", ESCALATIONS_ROUTE, 429, envelope)
    assert envelope["type"] == "rate_limit_reached"
    assert envelope["rate_limit"]["name"] == "escalations"
    assert envelope["rate_limit"]["limit"] == ROUTE_LIMIT
    other = api.get("/v2/schedules")
    assert other.status_code == 200
    assert other.headers["x-ratelimit-limit"] == "1200, 1200;window=60"


def test_the_default_bucket_never_outpaces_the_route_limit() -> None:
    """The client's escalations bucket and the sandbox's limiter on one clock: 200 back-to-back
    escalations, none refused."""
    fake = FakeTime()
    bucket = TokenBucket(ESCALATIONS_PER_MINUTE, clock=fake.monotonic, sleep=fake.bucket_sleep)
    server = RateLimiter(ROUTE_LIMIT, monotonic=fake.monotonic)
    refused = 0
    for _ in range(200):
        bucket.acquire()
        refused += not server.take("key").allowed
    assert refused == 0
    assert fake.now - 1000.0 >= (200 - ROUTE_LIMIT) * 60 / ROUTE_LIMIT  # it did have to wait
    with IncidentIOClient(base_url="http://127.0.0.1:9", api_key="k") as default:
        limiter = default.route_limiters[("POST", ESCALATIONS_ROUTE)]
    assert limiter.rate_per_minute <= ROUTE_LIMIT
    assert limiter.capacity <= ROUTE_LIMIT


def test_the_client_paces_escalations_with_a_shared_second_bucket(
    org: SandboxControl,
) -> None:
    """Only escalations wait for the route's bucket; two clients sharing it share its pace."""
    fake = FakeTime()
    escalations = TokenBucket(60, burst=1, clock=fake.monotonic, sleep=fake.bucket_sleep)
    general = TokenBucket(60_000, burst=1000, clock=fake.monotonic, sleep=fake.bucket_sleep)
    shared = {"rate_limiter": general, "escalations_rate_limiter": escalations}
    with make_client(org.base_url, **shared) as one, make_client(org.base_url, **shared) as two:
        admin = admin_id(one)
        for n in range(2):
            list(one.iter_schedules())
            one.create_escalation(idempotency_key=f"one-{n}", title="t", user_ids=[admin])
            two.create_escalation(idempotency_key=f"two-{n}", title="t", user_ids=[admin])
    assert escalations.waits == 3  # 4 escalations, burst 1: every one after the first waited
    assert fake.bucket_sleeps == [pytest.approx(1.0, abs=0.01)] * 3
    assert general.waits == 0
    assert [r["status"] for r in api_log(org, ESCALATIONS_ROUTE)] == [201] * 4


def test_a_429_on_escalations_is_retried_after_pausing_only_that_route(
    org: SandboxControl,
) -> None:
    """Retry-After pauses the escalations bucket (not the key's); the idempotent POST is resent."""
    fake = FakeTime()
    escalations = TokenBucket(60, burst=1, clock=fake.monotonic, sleep=fake.bucket_sleep)
    general = TokenBucket(60_000, burst=1000, clock=fake.monotonic, sleep=fake.bucket_sleep)
    with make_client(org.base_url, rate_limiter=general, escalations_rate_limiter=escalations) as c:
        admin = admin_id(c)
        org.set_faults(next=[{"kind": "rate_limit", "retry_after": 3}], paths=ESCALATIONS_ROUTE)
        with stamina.set_testing(True, attempts=3):
            escalation = c.create_escalation(idempotency_key="paced", title="t", user_ids=[admin])
    assert [r["status"] for r in api_log(org, ESCALATIONS_ROUTE)] == [429, 201]
    assert escalation.title == "t"
    assert escalations.waited_seconds >= 3.0
    assert general.waits == 0
