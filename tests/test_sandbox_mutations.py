"""Create and edit through the API: validation, lifecycle rules, updates, idempotency."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.sandbox_server import SandboxControl


@pytest.fixture
def api(sandbox: SandboxControl) -> Iterator[httpx.Client]:
    with sandbox.api() as client:
        yield client


def by_name(api: httpx.Client, path: str, key: str) -> dict[str, str]:
    return {item["name"]: item["id"] for item in api.get(path).json()[key]}


def edit(api: httpx.Client, ref: str, notify: bool = False, **changes: Any) -> httpx.Response:
    body = {"incident": changes, "notify_incident_channel": notify}
    return api.post(f"/v2/incidents/{ref}/actions/edit", json=body)


def error(response: httpx.Response) -> tuple[int, str, str | None]:
    body = response.json()
    first = body["errors"][0]
    return body["status"], first["code"], first.get("source", {}).get("field")


# -- create --


def test_create_defaults(api: httpx.Client, sandbox: SandboxControl) -> None:
    """A created incident opens in the first live status, by the API key, newest in the list."""
    severities = by_name(api, "/v1/severities", "severities")
    body = {
        "idempotency_key": "create-1",
        "visibility": "public",
        "name": "Checkout down",
        "severity_id": severities["Major"],
    }
    response = api.post("/v2/incidents", json=body)
    assert response.status_code == 200
    incident = response.json()["incident"]
    assert incident["incident_status"]["name"] == "Investigating"
    assert incident["severity"]["name"] == "Major"
    assert incident["incident_type"]["is_default"] is True
    assert incident["mode"] == "standard"
    assert incident["reference"] == "INC-201"
    assert incident["slack_channel_id"] == ""
    assert set(incident["creator"]) == {"api_key"}
    assert datetime.fromisoformat(incident["created_at"]) - sandbox.now() < timedelta(seconds=5)
    assert api.get("/v2/incidents").json()["incidents"][0]["id"] == incident["id"]
    assert api.get("/v2/incidents/201").json()["incident"]["id"] == incident["id"]


def test_create_is_idempotent(api: httpx.Client) -> None:
    """Replaying an idempotency_key returns the original incident, unchanged, with 200."""
    severities = by_name(api, "/v1/severities", "severities")
    first = api.post(
        "/v2/incidents",
        json={
            "idempotency_key": "same",
            "visibility": "public",
            "name": "First",
            "severity_id": severities["Minor"],
        },
    )
    again = api.post(
        "/v2/incidents",
        json={"idempotency_key": "same", "visibility": "private", "name": "Second"},
    )
    assert again.status_code == 200
    assert again.json() == first.json()
    total = api.get("/v2/incidents").json()["pagination_meta"]["total_record_count"]
    other = api.post(
        "/v2/incidents",
        json={
            "idempotency_key": "other",
            "visibility": "public",
            "severity_id": severities["Minor"],
        },
    )
    assert other.json()["incident"]["id"] != first.json()["incident"]["id"]
    assert api.get("/v2/incidents").json()["pagination_meta"]["total_record_count"] == total + 1


def test_create_validation(api: httpx.Client) -> None:
    """idempotency_key and visibility are required; severity too unless opening in triage."""
    statuses = by_name(api, "/v1/incident_statuses", "incident_statuses")
    no_key = api.post("/v2/incidents", json={"visibility": "public"})
    assert error(no_key) == (422, "is_required", "idempotency_key")
    no_visibility = api.post("/v2/incidents", json={"idempotency_key": "a"})
    assert error(no_visibility) == (422, "is_required", "visibility")
    no_severity = api.post("/v2/incidents", json={"idempotency_key": "b", "visibility": "public"})
    assert error(no_severity) == (422, "is_required", "severity_id")
    assert no_severity.json()["type"] == "validation_error"
    triage = api.post(
        "/v2/incidents",
        json={
            "idempotency_key": "c",
            "visibility": "public",
            "incident_status_id": statuses["Triage"],
        },
    )
    assert triage.status_code == 200
    assert "severity" not in triage.json()["incident"]
    bad_severity = api.post(
        "/v2/incidents",
        json={"idempotency_key": "d", "visibility": "public", "severity_id": "01NOPE"},
    )
    assert error(bad_severity)[2] == "severity_id"
    declined = api.post(
        "/v2/incidents",
        json={
            "idempotency_key": "e",
            "visibility": "public",
            "incident_status_id": statuses["Declined"],
        },
    )
    assert error(declined)[2] == "incident_status_id"


# -- edit: lifecycle --

ALLOWED = [
    ("Investigating", "Fixing"),
    ("Monitoring", "Investigating"),
    ("Triage", "Documenting"),
    ("Triage", "Closed"),
    ("Investigating", "Documenting"),
    ("Fixing", "Closed"),
    ("Documenting", "Closed"),
]
REFUSED = [
    ("Investigating", "Triage"),
    ("Investigating", "Declined"),
    ("Investigating", "Merged"),
    ("Investigating", "Canceled"),
    ("Investigating", "Paused"),
    ("Triage", "Investigating"),
    ("Triage", "Declined"),
    ("Documenting", "Investigating"),
    ("Paused", "Investigating"),
    ("Closed", "Documenting"),
    ("Closed", "Investigating"),
    ("Declined", "Closed"),
    ("Merged", "Closed"),
    ("Canceled", "Documenting"),
]


@pytest.mark.parametrize(("start", "target"), ALLOWED)
def test_allowed_transitions(
    api: httpx.Client, sandbox: SandboxControl, start: str, target: str
) -> None:
    """Same category, triage/live to learning/closed, and learning to closed are accepted."""
    statuses = by_name(api, "/v1/incident_statuses", "incident_statuses")
    incident = sandbox.add_incident(status=start)
    response = edit(api, incident["id"], incident_status_id=statuses[target])
    assert response.status_code == 200, response.text
    assert response.json()["incident"]["incident_status"]["name"] == target


@pytest.mark.parametrize(("start", "target"), REFUSED)
def test_refused_transitions(
    api: httpx.Client, sandbox: SandboxControl, start: str, target: str
) -> None:
    """Every other move is a 422 on incident_status_id and changes nothing."""
    statuses = by_name(api, "/v1/incident_statuses", "incident_statuses")
    incident = sandbox.add_incident(status=start)
    response = edit(api, incident["id"], incident_status_id=statuses[target], name="Renamed")
    assert response.status_code == 422
    assert response.json()["type"] == "validation_error"
    assert response.json()["errors"][0]["source"]["field"] == "incident_status_id"
    after = api.get(f"/v2/incidents/{incident['id']}").json()["incident"]
    assert after["incident_status"]["name"] == start
    assert after["name"] == incident["name"]


def test_edit_appends_update_and_bumps_updated_at(
    api: httpx.Client, sandbox: SandboxControl
) -> None:
    """A status+severity edit bumps updated_at to sandbox now and appends one update."""
    statuses = by_name(api, "/v1/incident_statuses", "incident_statuses")
    severities = by_name(api, "/v1/severities", "severities")
    incident = sandbox.add_incident(
        status="Investigating", severity="Minor", created_at="2024-01-01T00:00:00Z"
    )
    sandbox.advance_clock(3600)
    now = sandbox.now()
    response = edit(
        api,
        incident["id"],
        incident_status_id=statuses["Fixing"],
        severity_id=severities["Critical"],
    )
    edited = response.json()["incident"]
    assert abs(datetime.fromisoformat(edited["updated_at"]) - now) < timedelta(seconds=5)
    updates = api.get("/v2/incident_updates", params={"incident_id": incident["id"]}).json()
    [update] = updates["incident_updates"]
    assert update["new_incident_status"]["name"] == "Fixing"
    assert update["new_severity"]["name"] == "Critical"
    assert set(update["updater"]) == {"api_key"}
    # a severity-only change appends another; a name-only change does not
    edit(api, incident["id"], severity_id=severities["Major"])
    edit(api, incident["id"], name="Just a rename")
    updates = api.get("/v2/incident_updates", params={"incident_id": incident["id"]}).json()
    newest = updates["incident_updates"][0]
    assert len(updates["incident_updates"]) == 2
    assert newest["new_incident_status"]["name"] == "Fixing"
    assert newest["new_severity"]["name"] == "Major"


def test_edit_fields(api: httpx.Client, sandbox: SandboxControl) -> None:
    """Name, summary, call_url, custom fields, roles and timestamps edit; values [] unsets."""
    fields = by_name(api, "/v2/custom_fields", "custom_fields")
    roles = {
        r["role_type"]: r["id"] for r in api.get("/v2/incident_roles").json()["incident_roles"]
    }
    stamps = by_name(api, "/v2/incident_timestamps", "incident_timestamps")
    user = api.get("/v2/users").json()["users"][2]
    incident = sandbox.add_incident(custom_fields={"Team": "Data"})
    phase = next(
        e["custom_field"]
        for e in incident["custom_field_entries"]
        if e["custom_field"]["name"] == "Team"
    )
    mobile = next(o["id"] for o in phase["options"] if o["value"] == "Mobile")
    response = edit(
        api,
        incident["id"],
        name="New name",
        summary="New summary",
        call_url="https://meet.example.com/x",
        custom_field_entries=[
            {"custom_field_id": fields["Team"], "values": [{"value_option_id": mobile}]},
            {"custom_field_id": fields["Affected service"], "values": [{"value_text": "auth"}]},
        ],
        incident_role_assignments=[
            {"incident_role_id": roles["lead"], "assignee": {"email": user["email"]}}
        ],
        incident_timestamp_values=[
            {"incident_timestamp_id": stamps["Impact started"], "value": "2024-01-01T00:00:00Z"}
        ],
    )
    assert response.status_code == 200, response.text
    edited = response.json()["incident"]
    assert (edited["name"], edited["summary"], edited["call_url"]) == (
        "New name",
        "New summary",
        "https://meet.example.com/x",
    )
    values = {e["custom_field"]["name"]: e["values"] for e in edited["custom_field_entries"]}
    assert values["Team"][0]["value_option"]["value"] == "Mobile"
    assert values["Affected service"] == [{"value_text": "auth"}]
    lead = next(a for a in edited["incident_role_assignments"] if a["role"]["role_type"] == "lead")
    assert lead["assignee"]["id"] == user["id"]
    impact = next(
        t
        for t in edited["incident_timestamp_values"]
        if t["incident_timestamp"]["name"] == "Impact started"
    )
    assert impact["value"]["value"].startswith("2024-01-01T00:00:00")
    unset = edit(
        api,
        incident["id"],
        custom_field_entries=[{"custom_field_id": fields["Team"], "values": []}],
    )
    names = {e["custom_field"]["name"] for e in unset.json()["incident"]["custom_field_entries"]}
    assert "Team" not in names


def test_edit_validation(api: httpx.Client, sandbox: SandboxControl) -> None:
    """Missing body parts, unknown IDs, bad options and the reporter role are 422 with a field."""
    incident = sandbox.add_incident()
    path = f"/v2/incidents/{incident['id']}/actions/edit"
    assert error(api.post(path, json={"incident": {}})) == (
        422,
        "is_required",
        "notify_incident_channel",
    )
    assert error(api.post(path, json={"notify_incident_channel": True})) == (
        422,
        "is_required",
        "incident",
    )
    assert error(edit(api, incident["id"], severity_id="01NOPE"))[2] == "severity_id"
    assert error(edit(api, incident["id"], incident_status_id="01NOPE"))[2] == "incident_status_id"
    fields = by_name(api, "/v2/custom_fields", "custom_fields")
    bad_option = edit(
        api,
        incident["id"],
        custom_field_entries=[
            {"custom_field_id": fields["Team"], "values": [{"value_option_id": "01NOPE"}]}
        ],
    )
    assert error(bad_option)[2] == "custom_field_entries"
    roles = {
        r["role_type"]: r["id"] for r in api.get("/v2/incident_roles").json()["incident_roles"]
    }
    reporter = edit(
        api,
        incident["id"],
        incident_role_assignments=[
            {"incident_role_id": roles["reporter"], "assignee": {"id": "x"}}
        ],
    )
    assert error(reporter)[2] == "incident_role_assignments"
    assert edit(api, "01NOPE", name="x").status_code == 404


def test_edit_and_show_by_reference(api: httpx.Client, sandbox: SandboxControl) -> None:
    """The numeric part of the reference works for show and edit; the log keeps notify."""
    incident = api.get("/v2/incidents/42").json()["incident"]
    assert incident["reference"] == "INC-42"
    sandbox.clear_requests()
    response = edit(api, "42", notify=True, summary="By number")
    assert response.status_code == 200
    assert response.json()["incident"]["id"] == incident["id"]
    [logged] = sandbox.requests()
    assert logged["path"] == "/v2/incidents/42/actions/edit"
    assert logged["body"]["notify_incident_channel"] is True
    assert logged["status"] == 200
    assert api.get("/v2/incidents/99999").status_code == 404
