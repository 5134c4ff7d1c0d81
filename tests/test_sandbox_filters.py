"""GET /v2/incidents filters on a small hand-built history whose answers are known."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.sandbox_server import SandboxControl


class World:
    """Seven incidents A..G with known fields, and the catalog's IDs by name."""

    def __init__(self, sandbox: SandboxControl, api: httpx.Client) -> None:
        self.api = api
        self.severity = {s["name"]: s["id"] for s in api.get("/v1/severities").json()["severities"]}
        statuses = api.get("/v1/incident_statuses").json()["incident_statuses"]
        self.status = {s["name"]: s["id"] for s in statuses}
        types = api.get("/v1/incident_types").json()["incident_types"]
        self.type = {t["name"]: t["id"] for t in types}
        roles = api.get("/v2/incident_roles").json()["incident_roles"]
        self.role = {r["role_type"]: r["id"] for r in roles}
        fields = api.get("/v2/custom_fields").json()["custom_fields"]
        self.field = {f["name"]: f["id"] for f in fields}
        users = api.get("/v2/users", params={"page_size": 100}).json()["users"]
        self.alice, self.ben = users[0], users[1]
        self.names: dict[str, str] = {}
        specs: list[dict[str, Any]] = [
            {
                "name": "A",
                "status": "Investigating",
                "severity": "Minor",
                "incident_type": "Default",
                "created_at": "2024-05-01T10:00:00Z",
                "updated_at": "2024-06-01T00:00:00Z",
                "lead": self.alice["email"],
                "custom_fields": {"Team": "Payments", "Affected service": "checkout"},
            },
            {
                "name": "B",
                "status": "Triage",
                "severity": None,
                "incident_type": "Security",
                "visibility": "private",
                "created_at": "2024-05-02T00:00:00Z",
                "custom_fields": {"Team": "Platform"},
            },
            {
                "name": "C",
                "status": "Documenting",
                "severity": "Major",
                "incident_type": "Customer-facing",
                "created_at": "2024-05-03T12:00:00Z",
                "lead": self.ben["email"],
                "custom_fields": {"Phase": "Post-incident"},
            },
            {
                "name": "D",
                "status": "Closed",
                "severity": "Critical",
                "incident_type": "Default",
                "created_at": "2024-05-04T00:00:00Z",
                "lead": self.alice["email"],
                "custom_fields": {"Team": "Payments"},
            },
            {
                "name": "E",
                "status": "Declined",
                "severity": "Minor",
                "mode": "test",
                "created_at": "2024-05-05T00:00:00Z",
            },
            {
                "name": "F",
                "status": "Fixing",
                "severity": "Critical",
                "mode": "tutorial",
                "created_at": "2024-05-06T00:00:00Z",
            },
            {
                "name": "G",
                "status": "Paused",
                "severity": "Major",
                "mode": "retrospective",
                "created_at": "2024-05-07T00:00:00Z",
            },
        ]
        for spec in specs:
            incident = sandbox.add_incident(**spec)
            self.names[incident["id"]] = incident["name"]

    def query(self, *pairs: tuple[str, str]) -> list[str]:
        """Names of the matching incidents, newest first."""
        response = self.api.get("/v2/incidents", params=[*pairs, ("page_size", "250")])
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["pagination_meta"]["total_record_count"] == len(body["incidents"])
        return [incident["name"] for incident in body["incidents"]]

    def names_of(self, *pairs: tuple[str, str]) -> set[str]:
        return set(self.query(*pairs))

    def error_field(self, *pairs: tuple[str, str]) -> str:
        response = self.api.get("/v2/incidents", params=list(pairs))
        assert response.status_code == 422, response.text
        assert response.json()["type"] == "validation_error"
        field: str = response.json()["errors"][0]["source"]["field"]
        return field


@pytest.fixture
def world(sandbox: SandboxControl) -> Iterator[World]:
    sandbox.reset(incidents=0)
    with sandbox.api() as api:
        yield World(sandbox, api)


def test_default_excludes_test_and_tutorial(world: World) -> None:
    """Without mode, standard and retrospective incidents come back, newest first."""
    assert world.query() == ["G", "D", "C", "B", "A"]


def test_mode(world: World) -> None:
    """mode[one_of] picks exactly the listed modes; an unknown mode is 422."""
    assert world.names_of(("mode[one_of]", "test")) == {"E"}
    assert world.names_of(("mode[one_of]", "test"), ("mode[one_of]", "tutorial")) == {"E", "F"}
    assert world.error_field(("mode[one_of]", "demo")) == "mode[one_of]"


def test_status(world: World) -> None:
    """status one_of/not_in take status IDs."""
    s = world.status
    assert world.names_of(("status[one_of]", s["Investigating"])) == {"A"}
    assert world.names_of(
        ("status[one_of]", s["Investigating"]), ("status[one_of]", s["Closed"])
    ) == {"A", "D"}
    not_in = world.names_of(("status[not_in]", s["Investigating"]), ("status[not_in]", s["Triage"]))
    assert not_in == {"C", "D", "G"}


def test_status_category(world: World) -> None:
    """status_category one_of/not_in take category names; 'active' is not one."""
    assert world.names_of(
        ("status_category[one_of]", "live"), ("status_category[one_of]", "learning")
    ) == {"A", "C"}
    assert world.names_of(("status_category[not_in]", "closed")) == {"A", "B", "C", "G"}
    assert world.names_of(("status_category[one_of]", "paused")) == {"G"}
    assert world.error_field(("status_category[one_of]", "active")) == "status_category[one_of]"
    assert world.error_field(("status_category[is]", "live")) == "status_category[is]"


def test_created_at(world: World) -> None:
    """Dates are midnight UTC bounds, inclusive; RFC3339 timestamps work too; bad dates 422."""
    assert world.names_of(("created_at[gte]", "2024-05-03")) == {"C", "D", "G"}
    assert world.names_of(("created_at[lte]", "2024-05-02")) == {"A", "B"}
    assert world.names_of(("created_at[lte]", "2024-05-03")) == {"A", "B"}  # C is at 12:00
    assert world.names_of(("created_at[date_range]", "2024-05-02~2024-05-04")) == {"B", "C", "D"}
    assert world.names_of(("created_at[gte]", "2024-05-03T12:00:00Z")) == {"C", "D", "G"}
    assert world.names_of(("created_at[gte]", "2024-05-03T12:00:01+00:00")) == {"D", "G"}
    both = (("created_at[gte]", "2024-05-02"), ("created_at[lte]", "2024-05-04"))
    assert world.names_of(*both) == {"B", "C", "D"}
    assert world.error_field(("created_at[gte]", "yesterday")) == "created_at[gte]"
    assert world.error_field(("created_at[date_range]", "2024-05-01")) == "created_at[date_range]"
    assert world.error_field(("created_at[after]", "2024-05-01")) == "created_at[after]"


def test_updated_at(world: World) -> None:
    """updated_at filters use the same operators on the last-update time."""
    assert world.names_of(("updated_at[gte]", "2024-05-15")) == {"A"}
    assert world.names_of(("updated_at[lte]", "2024-05-03")) == {"B"}


def test_severity(world: World) -> None:
    """one_of/not_in by ID; gte/lte compare ranks and drop incidents without a severity."""
    sev = world.severity
    assert world.names_of(("severity[one_of]", sev["Minor"])) == {"A"}
    assert world.names_of(("severity[not_in]", sev["Minor"])) == {"B", "C", "D", "G"}
    assert world.names_of(("severity[gte]", sev["Major"])) == {"C", "D", "G"}
    assert world.names_of(("severity[lte]", sev["Major"])) == {"A", "C", "G"}
    assert world.names_of(("severity[gte]", sev["Minor"])) == {"A", "C", "D", "G"}
    assert world.error_field(("severity[gte]", "01NOPE")) == "severity[gte]"


def test_incident_type(world: World) -> None:
    """incident_type one_of/not_in take type IDs."""
    assert world.names_of(("incident_type[one_of]", world.type["Security"])) == {"B"}
    assert world.names_of(("incident_type[not_in]", world.type["Default"])) == {"B", "C"}


def test_incident_role(world: World) -> None:
    """is_blank=true is unassigned, is_set=true assigned, one_of takes user IDs."""
    lead = world.role["lead"]
    assert world.names_of((f"incident_role[{lead}][is_blank]", "true")) == {"B", "G"}
    assert world.names_of((f"incident_role[{lead}][is_blank]", "false")) == {"A", "C", "D"}
    assert world.names_of((f"incident_role[{lead}][is_set]", "true")) == {"A", "C", "D"}
    assert world.names_of((f"incident_role[{lead}][is_set]", "false")) == {"B", "G"}
    assert world.names_of((f"incident_role[{lead}][one_of]", world.alice["id"])) == {"A", "D"}
    assert world.error_field(("incident_role[01NOPE][is_blank]", "true")) == "incident_role[01NOPE]"
    assert world.error_field((f"incident_role[{lead}][is_blank]", "maybe")) == (
        f"incident_role[{lead}][is_blank]"
    )
    assert world.error_field((f"incident_role[{lead}][not_in]", "x")) == (
        f"incident_role[{lead}][not_in]"
    )


def test_custom_field(world: World) -> None:
    """Select fields filter by option ID, text fields by value; not_in keeps unset fields."""
    team = world.field["Team"]
    options = world.api.get("/v2/incidents", params={"page_size": 250}).json()["incidents"]
    payments = next(
        entry["values"][0]["value_option"]["id"]
        for incident in options
        for entry in incident["custom_field_entries"]
        if entry["values"][0].get("value_option", {}).get("value") == "Payments"
    )
    assert world.names_of((f"custom_field[{team}][one_of]", payments)) == {"A", "D"}
    assert world.names_of((f"custom_field[{team}][not_in]", payments)) == {"B", "C", "G"}
    service = world.field["Affected service"]
    assert world.names_of((f"custom_field[{service}][one_of]", "checkout")) == {"A"}
    assert world.error_field(("custom_field[01NOPE][one_of]", "x")) == "custom_field[01NOPE]"
    assert world.error_field((f"custom_field[{team}][gte]", "x")) == f"custom_field[{team}][gte]"


def test_filter_mode_and_combination(world: World) -> None:
    """Filters AND by default, OR with filter_mode=any; mode still scopes both."""
    pairs = (("status_category[one_of]", "closed"), ("severity[one_of]", world.severity["Minor"]))
    assert world.names_of(*pairs) == set()
    assert world.names_of(*pairs, ("filter_mode", "any")) == {"A", "D"}
    assert world.names_of(*pairs, ("filter_mode", "all")) == set()
    assert world.error_field(("filter_mode", "some")) == "filter_mode"


def test_sort_and_unknown_keys(world: World) -> None:
    """Oldest-first reverses the order; unknown filters and sorts are 422 naming the key."""
    assert world.query(("sort_by", "created_at_oldest_first")) == ["A", "B", "C", "D", "G"]
    assert world.error_field(("sort_by", "name")) == "sort_by"
    assert world.error_field(("priority[one_of]", "x")) == "priority[one_of]"
    assert world.error_field(("status", "x")) == "status"
    assert world.error_field(("status_categroy[one_of]", "live")) == "status_categroy[one_of]"
