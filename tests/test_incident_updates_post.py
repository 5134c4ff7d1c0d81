"""POST /v2/incident_updates end to end: the client against the sandbox over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stamina

from automations.errors import APIRejected
from automations.incidentio import IncidentIOClient
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
from tests.test_sandbox_required_keys import Obj, problems_in

ROUTE = "/v2/incident_updates"


@pytest.fixture
def org(sandbox: SandboxControl) -> SandboxControl:
    return use_secret_key(sandbox)


@pytest.fixture
def client(org: SandboxControl) -> Iterator[IncidentIOClient]:
    with make_client(org.base_url) as c:
        yield c


@pytest.fixture(autouse=True)
def no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log line of every test here, DEBUG included, lacks the key."""
    yield from watch_logs_for_key(caplog)


@pytest.fixture
def live(org: SandboxControl) -> dict[str, Any]:
    """A fresh live incident (Investigating, Minor)."""
    return org.add_incident(name="Checkout errors", status="Investigating", severity="Minor")


def status_id(client: IncidentIOClient, name: str) -> str:
    return next(s.id for s in client.list_incident_statuses() if s.name == name)


def posts(sandbox: SandboxControl) -> list[dict[str, Any]]:
    return [r for r in api_log(sandbox, ROUTE) if r["method"] == "POST"]


def test_message_update_is_created_listed_and_conforms(
    org: SandboxControl, live: dict[str, Any], openapi: Conformance
) -> None:
    """A message-only update answers 201, is listed first and leaves the status alone."""
    transport = RecordingTransport()
    with make_client(org.base_url, transport=transport) as api:
        update = api.post_incident_update(
            live["id"], idempotency_key="msg-1", message="**Mitigated**: cache flushed"
        )
        listed = list(api.iter_incident_updates(live["id"]))
        incident = api.get_incident(live["id"])
    assert update.message == "**Mitigated**: cache flushed"
    assert update.incident_id == live["id"]
    assert update.new_incident_status.name == "Investigating"
    assert update.new_severity is None
    assert listed[0].id == update.id
    assert listed[0].message == update.message
    assert incident.incident_status.name == "Investigating"
    assert incident.last_activity_at == update.created_at
    assert [r["status"] for r in posts(org)] == [201]
    for request, response in transport.exchanges:
        body = json.loads(request.content) if request.content else None
        path = request.url.path
        openapi.validate_request(request.method, path, request.url.params.multi_items(), body)
        openapi.validate_response(request.method, path, response.status_code, response.json())
    created = json.loads(transport.exchanges[0][1].content)
    assert problems_in(created, Obj("IncidentUpdatesCreateResultV2")) == []
    assert json.loads(transport.exchanges[0][0].content) == {
        "idempotency_key": "msg-1",
        "incident_id": live["id"],
        "message": "**Mitigated**: cache flushed",
    }


def test_status_move_follows_the_edit_rules(
    client: IncidentIOClient, org: SandboxControl, live: dict[str, Any]
) -> None:
    """live -> learning is allowed (and stamps Resolved at); learning -> triage is a 422."""
    documenting = status_id(client, "Documenting")
    update = client.post_incident_update(
        live["id"], idempotency_key="resolve", message="Resolved", to_status_id=documenting
    )
    assert update.new_incident_status.id == documenting
    incident = client.get_incident(live["id"])
    assert incident.status_category == "learning"
    assert incident.timestamp_value("Resolved at") == update.created_at
    before = len(list(client.iter_incident_updates(live["id"])))

    with pytest.raises(APIRejected) as refused:
        client.post_incident_update(
            live["id"], idempotency_key="reopen", to_status_id=status_id(client, "Triage")
        )
    assert refused.value.status == 422
    assert refused.value.fields == ["to_incident_status_id"]
    assert refused.value.errors[0].code == "invalid_status_transition"
    assert client.get_incident(live["id"]).status_category == "learning"
    assert len(list(client.iter_incident_updates(live["id"]))) == before


def test_severity_move_is_recorded(client: IncidentIOClient, live: dict[str, Any]) -> None:
    """to_severity_id changes the incident's severity and the update names the new one."""
    major = next(s for s in client.list_severities() if s.name == "Major")
    update = client.post_incident_update(live["id"], idempotency_key="sev", to_severity_id=major.id)
    assert update.new_severity is not None
    assert update.new_severity.id == major.id
    assert update.message is None
    severity = client.get_incident(live["id"]).severity
    assert severity is not None
    assert severity.id == major.id


def test_repeated_key_returns_the_first_update_and_changes_nothing(
    client: IncidentIOClient, org: SandboxControl, live: dict[str, Any]
) -> None:
    """The same key twice is one update and one status move, whatever the second body says."""
    fixing, monitoring = status_id(client, "Fixing"), status_id(client, "Monitoring")
    first = client.post_incident_update(
        live["id"], idempotency_key="k-1", message="Fixing it", to_status_id=fixing
    )
    again = client.post_incident_update(
        live["id"], idempotency_key="k-1", message="Other text", to_status_id=monitoring
    )
    assert again.id == first.id
    assert again.message == "Fixing it"
    assert client.get_incident(live["id"]).incident_status.id == fixing
    mine = [u for u in client.iter_incident_updates(live["id"]) if u.created_at >= first.created_at]
    assert [u.id for u in mine] == [first.id]
    assert [r["status"] for r in posts(org)] == [201, 201]


def test_a_lost_answer_is_retried_and_posts_once(
    client: IncidentIOClient, org: SandboxControl, live: dict[str, Any]
) -> None:
    """The connection drops after the sandbox applied it: the client resends, one update."""
    org.set_faults(next=[{"kind": "drop", "when": "after"}], paths=ROUTE)
    with stamina.set_testing(True, attempts=3):
        update = client.post_incident_update(live["id"], idempotency_key="lost", message="Update")
    assert len(posts(org)) == 2
    assert [u.message for u in client.iter_incident_updates(live["id"])].count("Update") == 1
    assert next(iter(client.iter_incident_updates(live["id"]))).id == update.id


BAD_BODIES = [
    ({"incident_id": "INC", "message": "m"}, 422, "is_required", "idempotency_key"),
    ({"idempotency_key": "b1", "message": "m"}, 422, "is_required", "incident_id"),
    ({"idempotency_key": "b2", "incident_id": "01NOPE", "message": "m"}, 422, "invalid_value",
     "incident_id"),
    ({"idempotency_key": "b3", "incident_id": "{live}"}, 422, "is_required", "message"),
    ({"idempotency_key": "b4", "incident_id": "{live}", "message": ""}, 422, "is_required",
     "message"),
    ({"idempotency_key": "b5", "incident_id": "{live}", "to_incident_status_id": "01NOPE"}, 422,
     "invalid_value", "to_incident_status_id"),
    ({"idempotency_key": "b6", "incident_id": "{live}", "to_severity_id": "01NOPE"}, 422,
     "invalid_value", "to_severity_id"),
    ({"idempotency_key": "b7", "incident_id": "{live}", "message": 7}, 422, "invalid_value",
     "message"),
    ([], 400, "invalid_body", None),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "code", "field"), BAD_BODIES)
def test_bad_bodies_are_refused_in_the_envelope(
    org: SandboxControl,
    live: dict[str, Any],
    openapi: Conformance,
    body: Any,
    status: int,
    code: str,
    field: str | None,
) -> None:
    """Each bad body is a 4xx envelope naming the body key; nothing is recorded."""
    if isinstance(body, dict):
        body = {k: live["id"] if v == "{live}" else v for k, v in body.items()}
    with org.api(SECRET) as api:
        before = api.get(ROUTE, params={"incident_id": live["id"]}).json()["incident_updates"]
        response = api.post(ROUTE, json=body)
        after = api.get(ROUTE, params={"incident_id": live["id"]}).json()["incident_updates"]
    assert response.status_code == status
    envelope = response.json()
    openapi.validate_response("POST", ROUTE, status, envelope)
    assert envelope["errors"][0]["code"] == code
    if field is not None:
        assert envelope["errors"][0]["source"] == {"field": field, "pointer": f"/{field}"}
    assert after == before


def test_the_client_refuses_an_update_that_changes_nothing(
    client: IncidentIOClient, org: SandboxControl, live: dict[str, Any]
) -> None:
    """No message, status or severity (or an empty key) fails before any request."""
    org.clear_requests()
    with pytest.raises(ValueError, match="needs a message, a status or a severity"):
        client.post_incident_update(live["id"], idempotency_key="nothing")
    with pytest.raises(ValueError, match="idempotency_key"):
        client.post_incident_update(live["id"], idempotency_key=" ", message="m")
    assert posts(org) == []


def test_unauthenticated_post_is_401(org: SandboxControl, live: dict[str, Any]) -> None:
    """The route sits behind the same authentication as every other."""
    response = httpx.post(
        f"{org.base_url}{ROUTE}",
        json={"idempotency_key": "x", "incident_id": live["id"], "message": "m"},
    )
    assert response.status_code == 401
    with org.api(SECRET) as api:
        listed = api.get(ROUTE, params={"incident_id": live["id"]}).json()["incident_updates"]
    assert all(u.get("message") != "m" for u in listed)
