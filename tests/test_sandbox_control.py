"""The control routes: reset and determinism, the clock, manual incidents, the request log."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from automations.sandbox import SandboxConfig, SandboxThread
from tests.openapi_conformance import Conformance
from tests.sandbox_server import SandboxControl

FIXED_NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ALL_MODES = ["standard", "retrospective", "test", "tutorial"]


@pytest.fixture
def api(sandbox: SandboxControl) -> Iterator[httpx.Client]:
    with sandbox.api() as client:
        yield client


def everything(api: httpx.Client) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"page_size": 250, "mode[one_of]": ALL_MODES}
    incidents: list[dict[str, Any]] = api.get("/v2/incidents", params=params).json()["incidents"]
    return incidents


def test_same_seed_same_history(sandbox: SandboxControl, api: httpx.Client) -> None:
    """The same seed and clock give byte-identical incidents; another seed does not."""
    sandbox.reset(seed=1, now=FIXED_NOW)
    first = everything(api)
    catalog = api.get("/v1/incident_statuses").json()
    sandbox.reset(seed=1, now=FIXED_NOW)
    assert everything(api) == first
    assert api.get("/v1/incident_statuses").json() == catalog
    sandbox.reset(seed=2, now=FIXED_NOW)
    other = everything(api)
    assert [i["id"] for i in other] != [i["id"] for i in first]
    assert [i["name"] for i in other] != [i["name"] for i in first]


def test_ids_do_not_depend_on_the_clock(sandbox: SandboxControl, api: httpx.Client) -> None:
    """IDs and references are fixed by the seed alone; ages are relative to the clock."""
    sandbox.reset(seed=3)
    first = everything(api)
    sandbox.reset(seed=3, now=FIXED_NOW)
    second = everything(api)
    assert [(i["id"], i["reference"]) for i in first] == [(i["id"], i["reference"]) for i in second]
    assert all(
        len(i["id"]) == 26 and set(i["id"]) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
        for i in first
    )


def test_seeded_history_shape(sandbox: SandboxControl, api: httpx.Client) -> None:
    """Ages run from minutes to months, references follow creation order, impact precedes it."""
    sandbox.reset(now=FIXED_NOW)
    incidents = everything(api)
    ages = [FIXED_NOW - datetime.fromisoformat(i["created_at"]) for i in incidents]
    assert min(ages) < timedelta(hours=1)
    assert max(ages) > timedelta(days=60)
    assert max(ages) <= timedelta(days=180)
    numbers = [int(i["reference"].removeprefix("INC-")) for i in incidents]
    assert numbers == sorted(numbers, reverse=True)
    assert {i.get("severity", {}).get("name") for i in incidents} == {
        "Minor",
        "Major",
        "Critical",
        None,
    }
    for incident in incidents:
        stamps = {
            t["incident_timestamp"]["name"]: t["value"]["value"]
            for t in incident["incident_timestamp_values"]
            if "value" in t
        }
        if "Impact started" in stamps:
            assert stamps["Impact started"] < incident["created_at"]
        assert incident["updated_at"] >= incident["created_at"]
    leads = [
        any(
            a["role"]["role_type"] == "lead" and "assignee" in a
            for a in i["incident_role_assignments"]
        )
        for i in incidents
    ]
    assert any(leads)
    assert not all(leads)


def test_clock_moves_the_date_header(sandbox: SandboxControl, api: httpx.Client) -> None:
    """Advancing the clock moves every API response's Date header by the same amount."""
    before = parsedate_to_datetime(api.get("/v1/severities").headers["date"])
    sandbox.advance_clock(86_400)
    after = parsedate_to_datetime(api.get("/v1/severities").headers["date"])
    assert timedelta(hours=23, minutes=59) < after - before < timedelta(hours=24, minutes=1)
    assert abs(sandbox.now() - after) < timedelta(seconds=5)
    assert abs(sandbox.set_clock(FIXED_NOW) - FIXED_NOW) < timedelta(seconds=1)
    dated = parsedate_to_datetime(api.get("/v1/severities").headers["date"])
    assert abs(dated - FIXED_NOW) < timedelta(seconds=2)


def test_clock_ages_incidents(sandbox: SandboxControl, api: httpx.Client) -> None:
    """Moving the clock leaves created_at alone, so incidents get older."""
    newest = everything(api)[0]
    age = sandbox.now() - datetime.fromisoformat(newest["created_at"])
    sandbox.advance_clock(7200)
    again = api.get(f"/v2/incidents/{newest['id']}").json()["incident"]
    assert again["created_at"] == newest["created_at"]
    later_age = sandbox.now() - datetime.fromisoformat(again["created_at"])
    assert math.isclose((later_age - age).total_seconds(), 7200, abs_tol=5)


def test_add_incident(sandbox: SandboxControl, api: httpx.Client, openapi: Conformance) -> None:
    """Control-added incidents take names for everything and show up in the API."""
    user = api.get("/v2/users").json()["users"][5]
    added = sandbox.add_incident(
        name="Added by hand",
        status="Documenting",
        severity="critical",
        incident_type="Customer-facing",
        visibility="private",
        custom_fields={"Team": "Payments", "Affected service": "ledger", "Phase": "Post-incident"},
        lead=user["email"],
        timestamps={"Impact started": "2025-02-28T23:00:00Z"},
        created_at="2025-03-01T00:00:00Z",
        postmortem_document_url="https://docs.example.com/pm",
        follow_ups=[{"title": "Fix it", "status": "outstanding", "assignee": user["email"]}],
    )
    shown = api.get(f"/v2/incidents/{added['id']}")
    openapi.validate_response("GET", f"/v2/incidents/{added['id']}", 200, shown.json())
    incident = shown.json()["incident"]
    assert incident == added
    assert incident["reference"] == "INC-201"
    assert incident["incident_status"]["name"] == "Documenting"
    assert incident["severity"]["name"] == "Critical"
    assert incident["visibility"] == "private"
    assert incident["created_at"].startswith("2025-03-01T00:00:00")
    values = {e["custom_field"]["name"]: e["values"][0] for e in incident["custom_field_entries"]}
    assert values["Team"]["value_option"]["value"] == "Payments"
    assert values["Affected service"] == {"value_text": "ledger"}
    follow_ups = api.get("/v3/follow_ups", params={"incident_id": added["id"]}).json()
    assert [f["title"] for f in follow_ups["follow_ups"]] == ["Fix it"]
    assert follow_ups["follow_ups"][0]["assignee"]["id"] == user["id"]


def test_patch_incident_bypasses_rules(sandbox: SandboxControl, api: httpx.Client) -> None:
    """PATCH moves an incident anywhere (closed back to live), logging an update by a human."""
    incident = sandbox.add_incident(status="Closed", severity="Minor")
    patched = sandbox.update_incident(
        incident["id"],
        status="Fixing",
        severity="Major",
        lead=None,
        name="Reopened",
        updater="Alice Chen",
    )
    assert patched["incident_status"]["name"] == "Fixing"
    assert patched["severity"]["name"] == "Major"
    assert patched["name"] == "Reopened"
    [update] = api.get("/v2/incident_updates", params={"incident_id": incident["id"]}).json()[
        "incident_updates"
    ]
    assert update["updater"]["user"]["name"] == "Alice Chen"
    assert update["new_severity"]["name"] == "Major"
    by_number = sandbox.update_incident(incident["reference"].removeprefix("INC-"), summary="S")
    assert by_number["summary"] == "S"


def test_patch_is_all_or_nothing(sandbox: SandboxControl) -> None:
    """An unknown name in a PATCH is a 422 that changes nothing."""
    incident = sandbox.add_incident(name="Untouched")
    response = httpx.patch(
        f"{sandbox.base_url}/_sandbox/incidents/{incident['id']}",
        json={"name": "Changed", "status": "Nonsense"},
    )
    assert response.status_code == 422
    assert "Nonsense" in response.json()["errors"][0]["message"]
    assert sandbox.incident(incident["id"])["name"] == "Untouched"


def test_request_log(sandbox: SandboxControl, api: httpx.Client) -> None:
    """API requests are logged with decoded query pairs and status; control ones are not."""
    sandbox.clear_requests()
    api.get("/v2/incidents", params=[("status_category[one_of]", "live"), ("page_size", "5")])
    api.get("/v2/incidents/01NOPE")
    sandbox.now()
    log = sandbox.requests()
    assert [(r["method"], r["path"], r["status"]) for r in log] == [
        ("GET", "/v2/incidents", 200),
        ("GET", "/v2/incidents/01NOPE", 404),
    ]
    assert log[0]["query_pairs"] == [["status_category[one_of]", "live"], ["page_size", "5"]]
    assert log[0]["query"] == "status_category%5Bone_of%5D=live&page_size=5"
    assert log[0]["request_id"]
    assert log[0]["time"]
    assert log[0]["fault"] is None
    sandbox.clear_requests()
    assert sandbox.requests() == []


def test_control_reports_and_rejects(sandbox: SandboxControl) -> None:
    """GET /_sandbox describes the state; bad reset or fault settings are 422."""
    summary = httpx.get(f"{sandbox.base_url}/_sandbox").json()
    assert summary["incidents"] == 200
    assert "POST /_sandbox/reset" in summary["endpoints"]
    bad_reset = httpx.post(f"{sandbox.base_url}/_sandbox/reset", json={"incidents": "many"})
    assert bad_reset.status_code == 422
    bad_fault = httpx.post(f"{sandbox.base_url}/_sandbox/faults", json={"next": [{"kind": "?"}]})
    assert bad_fault.status_code == 422
    bad_clock = httpx.post(f"{sandbox.base_url}/_sandbox/clock", json={"advance_seconds": "x"})
    assert bad_clock.status_code == 422


def test_custom_api_key() -> None:
    """A sandbox started with another key accepts only that key."""
    with SandboxThread(SandboxConfig(api_key="other-key", incidents=5)) as server:
        headers = {"Authorization": "Bearer other-key"}
        assert httpx.get(f"{server.base_url}/v1/severities", headers=headers).status_code == 200
        wrong = {"Authorization": "Bearer sandbox"}
        assert httpx.get(f"{server.base_url}/v1/severities", headers=wrong).status_code == 401
