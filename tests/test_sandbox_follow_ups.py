"""The sandbox's follow-ups: /v3 paging, filters and errors; /v2 until its removal date."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from automations.sandbox.follow_ups import V2_REMOVED_AT
from tests.openapi_conformance import Conformance
from tests.sandbox_server import SandboxControl


@pytest.fixture
def api(sandbox: SandboxControl) -> Iterator[httpx.Client]:
    with sandbox.api() as client:
        yield client


def get(api: httpx.Client, openapi: Conformance, path: str, **params: Any) -> Any:
    """One request whose answer must match the schema (errors included)."""
    response = api.get(path, params=params)
    openapi.validate_response("GET", path, response.status_code, response.json())
    return response


def listing(api: httpx.Client, openapi: Conformance, **params: Any) -> list[dict[str, Any]]:
    """Every page of /v3/follow_ups for ``params``: each page's items and meta."""
    pages, after = [], None
    while True:
        query = {**params, **({"after": after} if after else {})}
        body = get(api, openapi, "/v3/follow_ups", **query).json()
        pages.append(body)
        after = body["pagination_meta"].get("after")
        if after is None:
            return pages


def test_pages_by_id_oldest_first_with_an_empty_page_after_a_full_one(
    sandbox: SandboxControl, api: httpx.Client, openapi: Conformance
) -> None:
    """Four follow-ups at two a page: two full pages with a cursor, then an empty one."""
    incident = sandbox.add_incident(follow_ups=[{"title": f"Task {n}"} for n in range(4)])
    pages = listing(api, openapi, incident_id=incident["id"], page_size=2)
    assert [len(p["follow_ups"]) for p in pages] == [2, 2, 0]
    assert [p["pagination_meta"] for p in pages] == [
        {"page_size": 2, "after": pages[0]["follow_ups"][1]["id"]},
        {"page_size": 2, "after": pages[1]["follow_ups"][1]["id"]},
        {"page_size": 2},
    ]
    ids = [f["id"] for p in pages for f in p["follow_ups"]]
    assert ids == sorted(ids)
    assert [f["title"] for p in pages for f in p["follow_ups"]] == [f"Task {n}" for n in range(4)]
    short = listing(api, openapi, incident_id=incident["id"], page_size=3)
    assert [len(p["follow_ups"]) for p in short] == [3, 1]  # a short page ends it
    everything = listing(api, openapi, page_size=250)
    all_ids = [f["id"] for p in everything for f in p["follow_ups"]]
    assert all_ids == sorted(all_ids)
    assert len(all_ids) == len(set(all_ids)) > 100


def test_show_one_follow_up(
    sandbox: SandboxControl, api: httpx.Client, openapi: Conformance
) -> None:
    """/v3/follow_ups/{id} answers the listed follow-up; an unknown ID is a 404 envelope."""
    listed = get(api, openapi, "/v3/follow_ups", page_size=5).json()["follow_ups"][3]
    shown = get(api, openapi, f"/v3/follow_ups/{listed['id']}").json()
    assert shown == {"follow_up": listed}
    missing = get(api, openapi, "/v3/follow_ups/01NOPE")
    assert missing.status_code == 404
    assert missing.json()["type"] == "not_found"


def test_filters_incident_mode_team_and_times(
    sandbox: SandboxControl, api: httpx.Client, openapi: Conformance
) -> None:
    """Each filter narrows the listing as documented; test incidents only when asked for."""
    now = sandbox.now()
    old = (now - timedelta(days=3)).isoformat()
    incident = sandbox.add_incident(
        follow_ups=[
            {"title": "Old", "created_at": old, "assignee_team": "Payments"},
            {"title": "New", "assignee_team": "Data", "priority": "Urgent", "category": "Process"},
        ]
    )
    test_incident = sandbox.add_incident(mode="test", follow_ups=[{"title": "In a test"}])
    number = incident["reference"].removeprefix("INC-")

    def titles(**params: Any) -> list[str]:
        return [f["title"] for p in listing(api, openapi, **params) for f in p["follow_ups"]]

    assert titles(incident_id=incident["id"]) == ["Old", "New"]
    assert titles(incident_id=number) == ["Old", "New"]  # the reference's number works too
    assert titles(incident_id=test_incident["id"]) == []  # standard and retrospective only
    assert titles(incident_id=test_incident["id"], incident_mode="test") == ["In a test"]
    assert titles(incident_id=incident["id"], incident_mode="test") == []
    teams = {t["name"]: t["id"] for t in _teams(api, openapi)}
    assert titles(incident_id=incident["id"], assignee_team_id=teams["Data"]) == ["New"]
    cut = (now - timedelta(days=1)).isoformat()
    assert titles(incident_id=incident["id"], **{"created_at[gte]": cut}) == ["New"]
    assert titles(incident_id=incident["id"], **{"created_at[lte]": cut}) == ["Old"]
    window = f"{(now - timedelta(days=4)).date()}~{(now - timedelta(days=2)).date()}"
    assert titles(incident_id=incident["id"], **{"created_at[date_range]": window}) == ["Old"]
    first = listing(api, openapi, incident_id=incident["id"])[0]["follow_ups"][0]
    sandbox.advance_clock(3600)
    changed = sandbox.update_follow_up(first["id"], status="completed")
    since = (sandbox.now() - timedelta(minutes=5)).isoformat()
    assert titles(incident_id=incident["id"], **{"updated_at[gte]": since}) == ["Old"]
    assert changed["completed_at"] == changed["updated_at"]
    new = listing(api, openapi, incident_id=incident["id"])[0]["follow_ups"][1]
    assert new["assignee_team"] == {"id": teams["Data"], "name": "Data"}
    assert new["priority"]["name"] == "Urgent"
    assert new["category"]["name"] == "Process"


def _teams(api: httpx.Client, openapi: Conformance) -> list[dict[str, str]]:
    """The seeded teams, as follow-ups name them."""
    seen: dict[str, dict[str, str]] = {}
    for page in listing(api, openapi, page_size=250):
        for item in page["follow_ups"]:
            if "assignee_team" in item:
                seen[item["assignee_team"]["id"]] = item["assignee_team"]
    return list(seen.values())


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page_size": "251"}, "page_size"),
        ({"page_size": "0"}, "page_size"),
        ({"incident_mode": "live"}, "incident_mode"),
        ({"status": "completed"}, "status"),
        ({"updated_at[gte]": "yesterday"}, "updated_at[gte]"),
        ({"created_at[date_range]": "2026-01-01"}, "created_at[date_range]"),
    ],
)
def test_bad_queries_are_422_naming_the_parameter(
    api: httpx.Client, openapi: Conformance, params: dict[str, str], field: str
) -> None:
    """A bad size, mode, unknown parameter or date is a validation error with field and pointer."""
    response = get(api, openapi, "/v3/follow_ups", **params)
    assert response.status_code == 422
    assert response.json()["errors"][0]["source"] == {"field": field, "pointer": f"/{field}"}


def test_v2_answers_until_its_removal_date_then_404s(
    sandbox: SandboxControl, api: httpx.Client, openapi: Conformance
) -> None:
    """On the sandbox clock, /v2/follow_ups works until 2026-12-31T00:00:00Z, then is gone."""
    follow_up = get(api, openapi, "/v3/follow_ups").json()["follow_ups"][0]
    # Relative moves from wherever the sandbox clock is: a minute before, then after.
    sandbox.advance_clock((V2_REMOVED_AT - timedelta(minutes=1) - sandbox.now()).total_seconds())
    listed = get(api, openapi, "/v2/follow_ups")
    assert listed.status_code == 200
    assert follow_up["id"] in {f["id"] for f in listed.json()["follow_ups"]}
    assert get(api, openapi, f"/v2/follow_ups/{follow_up['id']}").status_code == 200
    sandbox.advance_clock(120)
    assert sandbox.now() > V2_REMOVED_AT
    for path in ("/v2/follow_ups", f"/v2/follow_ups/{follow_up['id']}"):
        gone = get(api, openapi, path)
        assert gone.status_code == 404
        assert gone.json()["type"] == "not_found"
    assert get(api, openapi, "/v3/follow_ups").status_code == 200


def test_a_follow_up_change_is_incident_activity(
    sandbox: SandboxControl, api: httpx.Client
) -> None:
    """Changing a follow-up moves its incident's last_activity_at, not its updated_at."""
    incident = sandbox.add_incident(follow_ups=[{"title": "Fix it"}])
    follow_up = api.get("/v3/follow_ups", params={"incident_id": incident["id"]}).json()
    sandbox.advance_clock(600)
    sandbox.update_follow_up(follow_up["follow_ups"][0]["id"], status="not_doing")
    after = api.get(f"/v2/incidents/{incident['id']}").json()["incident"]
    assert after["updated_at"] == incident["updated_at"]
    moved = datetime.fromisoformat(after["last_activity_at"]) - datetime.fromisoformat(
        incident["last_activity_at"]
    )
    assert timedelta(minutes=9) < moved < timedelta(minutes=11)


def test_users_leave_out_inactive_ones_unless_asked(
    api: httpx.Client, openapi: Conformance
) -> None:
    """GET /v2/users lists active users; include_inactive=true adds those who left."""
    active = get(api, openapi, "/v2/users", page_size=10_000).json()["users"]
    everyone = get(api, openapi, "/v2/users", page_size=10_000, include_inactive="true")
    users = everyone.json()["users"]
    assert all(u["is_active"] for u in active)
    gone = [u for u in users if not u["is_active"]]
    assert len(active) == 25
    assert len(gone) == 3
    assert {u["id"] for u in active} | {u["id"] for u in gone} == {u["id"] for u in users}
    assert all(u["seats"] == {"on_call": "none", "response": "none"} for u in gone)
    assert {u["seats"]["response"] for u in active} == {"full_access", "viewer_only"}
    email = gone[0]["email"]
    assert get(api, openapi, "/v2/users", email=email).json()["users"] == []
    found = get(api, openapi, "/v2/users", email=email, include_inactive="true").json()["users"]
    assert [u["id"] for u in found] == [gone[0]["id"]]
    assert get(api, openapi, "/v2/users", include_inactive="maybe").status_code == 422


def test_edit_errors_point_inside_the_incident(api: httpx.Client, openapi: Conformance) -> None:
    """A bad field of an edit's incident points at /incident/<field>; top-level ones at /<field>."""
    incident = api.get("/v2/incidents").json()["incidents"][0]
    path = f"/v2/incidents/{incident['id']}/actions/edit"
    bad = {"incident": {"severity_id": "01NOPE"}, "notify_incident_channel": False}
    response = api.post(path, json=bad)
    openapi.validate_response("POST", path, 422, response.json())
    assert response.json()["errors"][0]["source"] == {
        "field": "severity_id",
        "pointer": "/incident/severity_id",
    }
    missing = api.post(path, json={"incident": {}})
    assert missing.json()["errors"][0]["source"] == {
        "field": "notify_incident_channel",
        "pointer": "/notify_incident_channel",
    }


def test_incidents_carry_their_teams(api: httpx.Client, openapi: Conformance) -> None:
    """team_ids follows the Team field of seeded incidents ([] without one); types name owners."""
    incidents = api.get("/v2/incidents", params={"page_size": 250}).json()["incidents"]
    names = {t["id"]: t["name"] for t in _teams(api, openapi)}
    assert len(names) == 4
    for incident in incidents:
        team = [e for e in incident["custom_field_entries"] if e["custom_field"]["name"] == "Team"]
        expected = [team[0]["values"][0]["value_option"]["value"]] if team else []
        assert [names[t] for t in incident["team_ids"]] == expected
    assert any(i["team_ids"] for i in incidents)
    assert any(i["team_ids"] == [] for i in incidents)
    types = api.get("/v1/incident_types").json()["incident_types"]
    owned = [t["name"] for t in types if t.get("owning_team_ids")]
    assert owned == ["Security"]


def test_follow_up_control_refuses_what_it_cannot_apply(
    sandbox: SandboxControl, api: httpx.Client
) -> None:
    """Unknown fields, teams and statuses are 422 naming the choices; nothing half-applied."""
    incident = sandbox.add_incident(follow_ups=[{"title": "Fix it"}])
    (item,) = api.get("/v3/follow_ups", params={"incident_id": incident["id"]}).json()["follow_ups"]
    path = f"{sandbox.base_url}/_sandbox/follow_ups/{item['id']}"
    for body, words in (
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"status": "completed", "assignee_team": "Nope"}, "teams: Payments, Platform"),
        ({"status": "snoozed"}, "status must be one of"),
    ):
        response = httpx.patch(path, json=body)
        assert response.status_code == 422
        assert words in response.json()["errors"][0]["message"]
    shown = api.get(f"/v3/follow_ups/{item['id']}").json()["follow_up"]
    assert shown == item  # the half-valid change left nothing behind
    with pytest.raises(AssertionError, match="404"):
        sandbox.update_follow_up("01NOPE", status="completed")
