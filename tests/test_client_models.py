"""Models: realistic bodies parse, unknown data survives, helpers answer, parsing is fast.

The factories at the top build bodies shaped like the real API's (they are
checked against the schema below) and are shared by the other client tests.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from typing import Any

import httpx
import pytest

from automations.incidentio import (
    CustomField,
    CustomFieldEntryPayload,
    DurationMetricStatus,
    Incident,
    IncidentEdit,
    IncidentIOClient,
    IncidentRoleAssignmentPayload,
    IncidentTimestampValuePayload,
    IncidentType,
    RequestCounter,
    Seat,
    Severity,
    StatusCategory,
    TokenBucket,
    UserReference,
)
from automations.incidentio.models import IncidentUpdate, User
from tests.openapi_conformance import Conformance

API_KEY = "sk_live_0123456789abcdefSECRET"
T0 = "2024-05-01T10:00:00.123456Z"

Body = dict[str, Any]
Handler = Callable[[httpx.Request], httpx.Response]


# --- factories -------------------------------------------------------------------


def severity(rank: int = 2, name: str = "Major") -> Body:
    return {
        "id": f"01SEV{rank}",
        "name": name,
        "description": f"{name} impact.",
        "rank": rank,
        "created_at": T0,
        "updated_at": T0,
    }


def status(category: str = "live", name: str = "Investigating") -> Body:
    return {
        "id": f"01STATUS{category.upper()}",
        "name": name,
        "description": "",
        "rank": 1,
        "category": category,
        "created_at": T0,
        "updated_at": T0,
    }


def incident_type() -> Body:
    return {
        "id": "01TYPE",
        "name": "Production Outage",
        "description": "Customer facing",
        "is_default": True,
        "private_incidents_only": False,
        "create_in_triage": "optional",
        "created_at": T0,
        "updated_at": T0,
    }


def user(n: int = 1) -> Body:
    return {
        "id": f"01USER{n}",
        "name": f"User {n}",
        "email": f"user{n}@example.com",
        "role": "responder",
        "slack_user_id": f"U0{n}",
    }


def role(shortform: str = "lead", embedded: bool = True) -> Body:
    """An incident role; the copy embedded in incidents also carries ``required``."""
    body = {
        "id": f"01ROLE{shortform.upper()}",
        "name": "Incident Lead" if shortform == "lead" else shortform.title(),
        "shortform": shortform,
        "description": "Coordinates the response",
        "instructions": "Take point",
        "role_type": "lead" if shortform == "lead" else "custom",
        "created_at": T0,
        "updated_at": T0,
    }
    return {**body, "required": shortform == "lead"} if embedded else body


def custom_field_info(n: int = 1, options: int = 4) -> Body:
    return {
        "id": f"01FIELD{n}",
        "name": f"Team {n}",
        "description": "Which team",
        "field_type": "single_select",
        "options": [
            {
                "id": f"01OPT{n}{j}",
                "custom_field_id": f"01FIELD{n}",
                "value": f"T{j}",
                "sort_key": j,
            }
            for j in range(options)
        ],
    }


def timestamp(n: int, name: str) -> Body:
    return {"id": f"01TS{n}", "name": name, "rank": n}


def incident(n: int = 1, **overrides: Any) -> Body:
    """An IncidentV2 as GET /v2/incidents returns it (fields from the real schema)."""
    field_info = custom_field_info(1)
    body: Body = {
        "id": f"01HINC{n:020d}",
        "reference": f"INC-{n}",
        "name": f"Database is sad #{n}",
        "summary": "Queries are slow.",
        "incident_status": status("live"),
        "severity": severity(2),
        "incident_type": incident_type(),
        "visibility": "public",
        "mode": "standard",
        "creator": {"user": user(1)},
        "custom_field_entries": [
            {"custom_field": field_info, "values": [{"value_option": field_info["options"][1]}]}
        ],
        "incident_role_assignments": [
            {"role": role("lead"), "assignee": user(2)},
            {"role": role("scribe")},
        ],
        "incident_timestamp_values": [
            {"incident_timestamp": timestamp(1, "Impact started"), "value": {"value": T0}},
            {"incident_timestamp": timestamp(2, "Resolved at")},
        ],
        "duration_metrics": [
            {"duration_metric": {"id": "01DM", "name": "Lasted"}, "status": "timestamps_missing"}
        ],
        "permalink": f"https://app.incident.io/incidents/{n}",
        "postmortem_document_url": "https://docs.example.com/pm",
        "slack_team_id": "T02A1FSLE8J",
        "slack_channel_id": "C02AW36C1M5",
        "slack_channel_name": f"inc-{n}-db",
        "created_at": T0,
        "updated_at": T0,
        "last_activity_at": T0,
        "team_ids": ["01TEAM1"],
    }
    body.update(overrides)
    return body


def incident_update(n: int = 1, incident_id: str = "01HINC1") -> Body:
    return {
        "id": f"01UPD{n}",
        "incident_id": incident_id,
        "new_incident_status": status("live"),
        "new_severity": severity(3, "Critical"),
        "message": "Escalated",
        "updater": {"api_key": {"id": "01KEY", "name": "automations"}},
        "created_at": T0,
    }


def follow_up(n: int = 1, status: str = "outstanding", incident_id: str = "01HINC1") -> Body:
    """A FollowUpV3, as GET /v3/follow_ups returns it."""
    return {
        "id": f"01FU{n:04d}",
        "incident_id": incident_id,
        "creator": {"user": user(1)},
        "title": "Add an index",
        "status": status,
        "labels": ["db"],
        "assignee": user(2),
        "assignee_team": {"id": "01TEAM1", "name": "Payments"},
        "priority": {"id": "01PRIO", "name": "Urgent", "rank": 10},
        "category": {"id": "01CAT", "name": "Infrastructure", "rank": 1, "description": "Infra"},
        "created_at": T0,
        "updated_at": T0,
    }


def user_with_roles(n: int = 1) -> Body:
    base = {"id": "01RBAC", "name": "Responder", "slug": "responder", "description": ""}
    seats = {"on_call": "full_access", "response": "full_access"}
    return {**user(n), "base_role": base, "custom_roles": [], "is_active": True, "seats": seats}


def error_body(status_code: int, type_: str, code: str, message: str, field: str | None) -> Body:
    err: Body = {"code": code, "message": message}
    if field:
        err["source"] = {"field": field, "pointer": f"/{field}"}
    return {"type": type_, "status": status_code, "request_id": "req-123", "errors": [err]}


# --- a recording MockTransport -----------------------------------------------------


@dataclass
class FakeTime:
    """A fake clock: stamina's sleeps (time.sleep) and the bucket's both advance it."""

    now: float = 1000.0
    retry_sleeps: list[float] = field(default_factory=list)
    bucket_sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.retry_sleeps.append(seconds)
        self.now += seconds

    def bucket_sleep(self, seconds: float) -> None:
        self.bucket_sleeps.append(seconds)
        self.now += seconds


@dataclass
class Recorder:
    """Wraps a handler: validates every request (and JSON response) against the schema."""

    openapi: Conformance
    handler: Handler
    check_responses: bool = True
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = json.loads(request.content) if request.content else None
        self.openapi.validate_request(
            request.method, request.url.path, request.url.params.multi_items(), body
        )
        response = self.handler(request)
        if self.check_responses and response.status_code < 500:
            try:
                payload = json.loads(response.content)
            except ValueError:
                return response
            self.openapi.validate_response(
                request.method, request.url.path, response.status_code, payload
            )
        return response

    @property
    def params(self) -> list[list[tuple[str, str]]]:
        return [r.url.params.multi_items() for r in self.requests]


def make_client(
    recorder: Recorder, fake: FakeTime | None = None, **kwargs: Any
) -> IncidentIOClient:
    fake = fake or FakeTime()
    kwargs.setdefault(
        "rate_limiter",
        TokenBucket(60_000, burst=1_000, clock=fake.monotonic, sleep=fake.bucket_sleep),
    )
    kwargs.setdefault("counter", RequestCounter())
    return IncidentIOClient(
        base_url="https://api.incident.io",
        api_key=API_KEY,
        transport=httpx.MockTransport(recorder),
        **kwargs,
    )


def ok(body: Body, **headers: str) -> httpx.Response:
    return httpx.Response(200, json=body, headers=headers)


# --- tests -------------------------------------------------------------------------


def test_factories_match_the_real_schema(openapi: Conformance) -> None:
    """The bodies the client tests serve are ones the real API could send."""
    openapi.validate_response("GET", "/v2/incidents", 200, {"incidents": [incident()]})
    openapi.validate_response(
        "GET", "/v2/incident_updates", 200, {"incident_updates": [incident_update()]}
    )
    openapi.validate_response(
        "GET",
        "/v3/follow_ups",
        200,
        {"follow_ups": [follow_up()], "pagination_meta": {"page_size": 1}},
    )
    openapi.validate_response("GET", "/v3/follow_ups/01FU0001", 200, {"follow_up": follow_up()})
    openapi.validate_response(
        "GET", "/v2/users", 200, {"users": [user_with_roles()], "pagination_meta": {"page_size": 1}}
    )
    openapi.validate_response(
        "POST",
        "/v2/incidents/01H/actions/edit",
        422,
        error_body(422, "validation_error", "is_required", "Severity needed", "severity_id"),
    )


def test_incident_typed_fields_and_helpers() -> None:
    """An incident parses into typed fields, and the helpers find values by ID or name."""
    inc = Incident.model_validate(incident(7))
    assert inc.reference == "INC-7"
    assert inc.incident_status.category == StatusCategory.LIVE
    assert inc.status_category == "live"
    assert inc.severity is not None
    assert inc.severity.rank == 2
    assert inc.severity_rank == 2
    assert inc.created_at == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert inc.timestamp_value("impact started") == inc.created_at
    assert inc.timestamp_value("01TS1") == inc.created_at
    assert inc.timestamp_value("Resolved at") is None
    assert inc.timestamp_value("nope") is None
    lead = inc.role_assignee("01ROLELEAD")
    assert lead is not None
    assert lead.id == "01USER2"
    assert inc.role_assignee("Incident Lead") == lead
    assert inc.role_assignee("scribe") is None
    assert inc.custom_field_option_ids("01FIELD1") == ("01OPT11",)
    assert [v.display for v in inc.custom_field_values("team 1")] == ["T1"]
    assert inc.custom_field_values("other") == ()
    assert not inc.is_private
    assert inc.creator is not None
    assert inc.creator.display_name == "User 1"


def test_unknown_fields_and_enum_values_survive() -> None:
    """New properties and enum values the API adds do not break parsing."""
    body = incident(1, brand_new_field={"x": 1}, mode="stream", visibility="private")
    body["incident_status"] = {**status("live"), "category": "frozen"}
    inc = Incident.model_validate(body)
    assert inc.model_extra is not None
    assert inc.model_extra["brand_new_field"] == {"x": 1}
    assert inc.mode == "stream"
    assert inc.is_private
    assert inc.incident_status.category == "frozen"
    # embedded custom field options are kept raw, not modelled (see CustomField)
    entry_field = inc.custom_field_entries[0].custom_field
    assert entry_field.model_extra is not None
    assert len(entry_field.model_extra["options"]) == 4


def test_optional_parts_may_be_missing() -> None:
    """Only what the product needs is required: a bare incident still parses."""
    bare = {
        "id": "01H",
        "reference": "INC-1",
        "name": "x",
        "incident_status": {"id": "s", "name": "Triage", "category": "triage"},
        "created_at": "2024-01-01T00:00:00+01:00",
        "updated_at": "2024-01-01T00:00:00",
    }
    inc = Incident.model_validate(bare)
    assert inc.severity is None
    assert inc.severity_rank is None
    assert inc.slack_channel_id == ""
    assert inc.created_at.utcoffset() is not None
    assert inc.updated_at.tzinfo is UTC  # naive values are read as UTC


def test_section_0_keys_are_typed_and_tolerant() -> None:
    """The live API's newer keys parse into typed fields; new enum values still parse."""
    inc = Incident.model_validate(
        incident(
            1,
            debriefs=[{"id": "01DB", "start_at": T0, "end_at": T0}],
            postmortem_document_ids=["01PM"],
            slack_channel_url="https://slack.example.com/C02",
            ms_teams_channel_url="https://teams.example.com/x",
        )
    )
    assert inc.team_ids == ("01TEAM1",)
    assert inc.last_activity_at == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert [(m.duration_metric.name, m.status) for m in inc.duration_metrics] == [
        ("Lasted", DurationMetricStatus.TIMESTAMPS_MISSING)
    ]
    assert inc.debriefs[0].id == "01DB"
    assert inc.postmortem_document_ids == ("01PM",)
    assert inc.slack_channel_url
    assert inc.ms_teams_channel_url
    member = User.model_validate(user_with_roles())
    assert member.is_active is True
    assert member.seats is not None
    assert member.seats.on_call == Seat.FULL_ACCESS
    odd = User.model_validate({**user_with_roles(2), "seats": {"on_call": "x", "response": "y"}})
    assert odd.seats is not None
    assert odd.seats.response == "y"
    assert User.model_validate(user(3)).is_active is None  # embedded UserV2 does not say
    owned = IncidentType.model_validate({**incident_type(), "owning_team_ids": ["01TEAM1"]})
    assert owned.owning_team_ids == ("01TEAM1",)
    fixed = {"catalog_attribute_id": "01ATTR", "values": ["a", "b"]}
    field_ = CustomField.model_validate(
        {**custom_field_info(1), "fixed_filter": fixed, "created_at": T0, "updated_at": T0}
    )
    assert field_.fixed_filter is not None
    assert field_.fixed_filter.values == ("a", "b")


def test_catalog_models_are_hashable_and_round_trip() -> None:
    """Catalog items are frozen (usable in sets and frozen dataclasses) and dump back."""
    sev = Severity.model_validate(severity(1, "Minor"))
    assert hash(sev) == hash(Severity.model_validate(severity(1, "Minor")))
    assert Severity.model_validate(sev.model_dump(mode="json")) == sev
    update = IncidentUpdate.model_validate(incident_update())
    assert update.new_severity is not None
    assert update.new_severity.name == "Critical"
    assert update.updater is not None
    assert update.updater.display_name == "API key automations"
    assert User.model_validate(user_with_roles()).email == "user1@example.com"


def test_incident_edit_sends_only_set_fields(openapi: Conformance) -> None:
    """IncidentEdit serialises exactly the fields that were set, and validates as a body."""
    assert IncidentEdit(severity_id="01SEV3").payload() == {"severity_id": "01SEV3"}
    edit = IncidentEdit(
        incident_status_id="01STATUSCLOSED",
        custom_field_entries=[
            CustomFieldEntryPayload.options("01FIELD1", "01OPT11"),
            CustomFieldEntryPayload.options("01FIELD2"),  # unset
        ],
        incident_role_assignments=[
            IncidentRoleAssignmentPayload(
                incident_role_id="01ROLELEAD", assignee=UserReference(email="a@example.com")
            )
        ],
        incident_timestamp_values=[
            IncidentTimestampValuePayload(
                incident_timestamp_id="01TS2", value=datetime(2024, 5, 2, tzinfo=UTC)
            ),
            IncidentTimestampValuePayload(incident_timestamp_id="01TS3"),  # unset
        ],
    )
    payload = edit.payload()
    assert payload == {
        "incident_status_id": "01STATUSCLOSED",
        "custom_field_entries": [
            {"custom_field_id": "01FIELD1", "values": [{"value_option_id": "01OPT11"}]},
            {"custom_field_id": "01FIELD2", "values": []},
        ],
        "incident_role_assignments": [
            {"incident_role_id": "01ROLELEAD", "assignee": {"email": "a@example.com"}}
        ],
        "incident_timestamp_values": [
            {"incident_timestamp_id": "01TS2", "value": "2024-05-02T00:00:00Z"},
            {"incident_timestamp_id": "01TS3"},
        ],
    }
    # what rules call directly (PlannedAction.request_body) gives the same
    assert edit.model_dump(mode="json", exclude_unset=True) == payload
    body = {"incident": payload, "notify_incident_channel": False}
    openapi.validate_request("POST", "/v2/incidents/01H/actions/edit", body=body)
    with pytest.raises(ValueError, match="severity"):
        IncidentEdit(severity="Major")  # type: ignore[call-arg]


def test_parsing_ten_thousand_incidents_keeps_every_one_and_restores_gc() -> None:
    """40 pages of 250 realistic incidents all go through the client, GC restored after."""
    # distinct IDs on every page: the client yields an incident once per listing
    pages = [json.dumps([incident(p * 250 + n) for n in range(250)]) for p in range(40)]
    served = count()

    def handler(request: httpx.Request) -> httpx.Response:
        page = next(served)
        after = f', "after": "cursor-{page}"' if page < 39 else ""
        body = f'{{"incidents": {pages[page]}, "pagination_meta": {{"page_size": 250{after}}}}}'
        return httpx.Response(200, content=body.encode())

    client = IncidentIOClient(
        api_key=API_KEY,
        transport=httpx.MockTransport(handler),
        rate_limiter=TokenBucket(10**9, burst=10**6),
    )
    assert gc.isenabled()
    total = sum(1 for _ in client.iter_incidents())
    assert total == 10_000
    assert gc.isenabled()


def test_parsing_leaves_a_disabled_gc_disabled() -> None:
    """If the application turned GC off, the client does not turn it back on."""
    body = {"incidents": [incident(1)], "pagination_meta": {"page_size": 250}}
    client = IncidentIOClient(api_key=API_KEY, transport=httpx.MockTransport(lambda r: ok(body)))
    gc.disable()
    try:
        assert len(list(client.iter_incidents())) == 1
        assert not gc.isenabled()
    finally:
        gc.enable()
