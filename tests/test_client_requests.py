"""Every call the client makes: the request matches the real schema, the response parses."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from automations import __version__
from automations.errors import ConfigError
from automations.incidentio import (
    CustomFieldEntryPayload,
    IncidentEdit,
    IncidentFilter,
    IncidentIOClient,
    RequestCounter,
)
from tests.openapi_conformance import Conformance
from tests.test_client_models import (
    API_KEY,
    T0,
    Recorder,
    follow_up,
    incident,
    incident_type,
    incident_update,
    make_client,
    ok,
    role,
    severity,
    status,
    timestamp,
    user_with_roles,
)

CATALOG: dict[str, dict[str, Any]] = {
    "/v1/severities": {"severities": [severity(1, "Minor"), severity(2, "Major")]},
    "/v1/severities/01SEV1": {"severity": severity(1, "Minor")},
    "/v1/incident_statuses": {"incident_statuses": [status("triage"), status("live")]},
    "/v1/incident_statuses/01STATUSLIVE": {"incident_status": status("live")},
    "/v1/incident_types": {"incident_types": [incident_type()]},
    "/v2/incident_roles": {
        "incident_roles": [role("lead", embedded=False), role("scribe", embedded=False)]
    },
    "/v2/custom_fields": {
        "custom_fields": [
            {
                "id": "01FIELD1",
                "name": "Team",
                "description": "",
                "field_type": "single_select",
                "created_at": T0,
                "updated_at": T0,
            }
        ]
    },
    "/v2/incident_timestamps": {"incident_timestamps": [timestamp(1, "Impact started")]},
    "/v3/follow_ups": {
        "follow_ups": [follow_up(1), follow_up(2)],
        "pagination_meta": {"page_size": 250},
    },
}


def catalog_handler(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path in CATALOG:
        return ok(CATALOG[path], Date="Wed, 01 May 2024 10:00:00 GMT")
    if path == "/v1/custom_field_options":
        after = request.url.params.get("after")
        if after is None:
            options = [
                {"id": f"01OPT{i}", "custom_field_id": "01FIELD1", "value": f"T{i}", "sort_key": i}
                for i in range(2)
            ]
            return ok(
                {
                    "custom_field_options": options,
                    "pagination_meta": {"page_size": 250, "after": "01OPT1"},
                }
            )
        return ok({"custom_field_options": [], "pagination_meta": {"page_size": 250}})
    if path == "/v2/incident_updates":
        if request.url.params.get("after"):
            return ok({"incident_updates": [], "pagination_meta": {"page_size": 250}})
        updates = [incident_update(1), incident_update(2)]
        return ok(
            {"incident_updates": updates, "pagination_meta": {"page_size": 250, "after": "01UPD2"}}
        )
    if path == "/v2/users":
        return ok({"users": [user_with_roles(1)], "pagination_meta": {"page_size": 250}})
    return httpx.Response(
        404,
        json={
            "type": "not_found",
            "status": 404,
            "request_id": "r",
            "errors": [{"code": "not_found", "message": path}],
        },
    )


def test_catalog_routes(openapi: Conformance) -> None:
    """Each catalog list/show call sends a valid request and returns typed items."""
    recorder = Recorder(openapi, catalog_handler)
    with make_client(recorder) as client:
        assert [s.name for s in client.list_severities()] == ["Minor", "Major"]
        assert client.get_severity("01SEV1").rank == 1
        assert [s.category for s in client.list_incident_statuses()] == ["triage", "live"]
        assert client.get_incident_status("01STATUSLIVE").name == "Investigating"
        assert client.list_incident_types()[0].create_in_triage == "optional"
        assert [r.shortform for r in client.list_incident_roles()] == ["lead", "scribe"]
        assert client.list_custom_fields()[0].field_type == "single_select"
        assert [o.value for o in client.list_custom_field_options("01FIELD1")] == ["T0", "T1"]
        assert client.list_incident_timestamps()[0].name == "Impact started"
        assert client.server_time == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    paths = [r.url.path for r in recorder.requests]
    assert paths.count("/v1/custom_field_options") == 2


def test_activity_routes(openapi: Conformance) -> None:
    """Incident updates page by cursor; follow-ups and users pass their filters."""
    recorder = Recorder(openapi, catalog_handler)
    client = make_client(recorder)
    updates = list(client.iter_incident_updates("01HINC1"))
    assert [u.id for u in updates] == ["01UPD1", "01UPD2"]
    assert recorder.params[0] == [("incident_id", "01HINC1"), ("page_size", "250")]
    assert recorder.params[1][-1] == ("after", "01UPD2")
    follow_ups = list(client.iter_follow_ups(incident_id="01HINC1", incident_mode="standard"))
    assert [f.is_outstanding for f in follow_ups] == [True, True]
    assert recorder.params[-1] == [
        ("incident_id", "01HINC1"),
        ("incident_mode", "standard"),
        ("page_size", "250"),
    ]
    users = list(client.iter_users(email="user1@example.com"))
    assert users[0].email == "user1@example.com"
    assert ("email", "user1@example.com") in recorder.params[-1]
    with pytest.raises(ValueError, match="incident_mode"):
        client.iter_follow_ups(incident_mode="live")


def test_list_incidents_sends_filter_and_page_size(openapi: Conformance) -> None:
    """The filter's encoding and page_size=250 reach the API exactly."""
    recorder = Recorder(
        openapi,
        lambda r: ok(
            {
                "incidents": [incident(1)],
                "pagination_meta": {"page_size": 250, "total_record_count": 1},
            }
        ),
    )
    client = make_client(recorder)
    query = (
        IncidentFilter()
        .status_category(one_of=["live", "learning"])
        .severity(gte="01SEV2")
        .created_at(date_range=(date(2024, 12, 2), date(2024, 12, 8)))
        .custom_field("01FIELD1", one_of="01OPT11")
        .incident_role("01ROLELEAD", is_blank=True)
        .mode(one_of=["standard", "test"])
        .sort_by("created_at_oldest_first")
    )
    pages = list(client.iter_incident_pages(query))
    assert pages[0].total_record_count == 1
    assert pages[0].after is None
    assert recorder.params[0] == [*query.to_params(), ("page_size", "250")]
    raw = str(recorder.requests[0].url)
    assert "status_category%5Bone_of%5D=learning&status_category%5Bone_of%5D=live" in raw
    assert "created_at%5Bdate_range%5D=2024-12-02~2024-12-08" in raw


@pytest.mark.parametrize(
    ("given", "path"),
    [
        ("01HINC00000000000000000001", "/v2/incidents/01HINC00000000000000000001"),
        ("123", "/v2/incidents/123"),
        ("INC-123", "/v2/incidents/123"),
        (" inc-42 ", "/v2/incidents/42"),
    ],
)
def test_get_incident_by_id_or_reference(openapi: Conformance, given: str, path: str) -> None:
    """IDs pass through; references become their number, as the API accepts."""
    recorder = Recorder(openapi, lambda r: ok({"incident": incident(123)}))
    assert make_client(recorder).get_incident(given).reference == "INC-123"
    assert recorder.requests[0].url.path == path


def test_get_incident_rejects_unsafe_ids(openapi: Conformance) -> None:
    """An ID that could change the path is refused before any request."""
    recorder = Recorder(openapi, lambda r: ok({"incident": incident()}))
    client = make_client(recorder)
    for bad in ["", "../severities", "a/b", "1 2"]:
        with pytest.raises(ValueError, match=r"not an incident\.io ID"):
            client.get_incident(bad)
    assert recorder.requests == []


def test_edit_sends_exactly_the_set_fields(openapi: Conformance) -> None:
    """The edit body is {incident: only set fields, notify_incident_channel}."""
    recorder = Recorder(openapi, lambda r: ok({"incident": incident(1)}))
    client = make_client(recorder)
    edit = IncidentEdit(
        severity_id="01SEV3", custom_field_entries=[CustomFieldEntryPayload.options("01F", "01O")]
    )
    client.edit_incident("01HINC1", edit, notify_incident_channel=True)
    request = recorder.requests[0]
    assert (request.method, request.url.path) == ("POST", "/v2/incidents/01HINC1/actions/edit")
    assert json.loads(request.content) == {
        "incident": {
            "severity_id": "01SEV3",
            "custom_field_entries": [
                {"custom_field_id": "01F", "values": [{"value_option_id": "01O"}]}
            ],
        },
        "notify_incident_channel": True,
    }
    with pytest.raises(ValueError, match="nothing to edit"):
        client.edit_incident("01HINC1", IncidentEdit(), notify_incident_channel=False)
    assert client.counter.count("POST", "/v2/incidents/{id}/actions/edit", 200) == 1


def test_create_incident(openapi: Conformance) -> None:
    """Create sends the idempotency key and fields; unknown fields fail before sending."""
    recorder = Recorder(openapi, lambda r: ok({"incident": incident(9)}))
    client = make_client(recorder)
    created = client.create_incident(
        idempotency_key="key-1",
        visibility="public",
        name="Test",
        severity_id="01SEV1",
        mode="test",
        incident_timestamp_values=[{"incident_timestamp_id": "01TS1", "value": T0}],
    )
    assert created.reference == "INC-9"
    body = json.loads(recorder.requests[0].content)
    assert body == {
        "idempotency_key": "key-1",
        "visibility": "public",
        "name": "Test",
        "severity_id": "01SEV1",
        "mode": "test",
        "incident_timestamp_values": [
            {"incident_timestamp_id": "01TS1", "value": "2024-05-01T10:00:00.123456Z"}
        ],
    }
    with pytest.raises(ValueError, match="severity"):
        client.create_incident(idempotency_key="k", visibility="public", severity="Major")
    with pytest.raises(ValueError, match="visibility"):
        client.create_incident(idempotency_key="k", visibility="secret")
    assert len(recorder.requests) == 1


def test_headers_user_agent_and_bearer(openapi: Conformance) -> None:
    """The key goes only in Authorization: Bearer; User-Agent names the product version."""
    recorder = Recorder(openapi, catalog_handler)
    make_client(recorder).list_severities()
    headers = recorder.requests[0].headers
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["user-agent"] == f"automations/{__version__}"
    assert API_KEY not in str(recorder.requests[0].url)


def test_counter_by_route_template_and_status(openapi: Conformance) -> None:
    """Requests are counted by method, route template and status, shared when passed in."""
    counter = RequestCounter()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/404"):
            return httpx.Response(
                404, json={"type": "not_found", "status": 404, "request_id": "r", "errors": []}
            )
        return ok({"incident": incident(1)})

    one = make_client(Recorder(openapi, handler), counter=counter)
    two = make_client(Recorder(openapi, handler), counter=counter)
    one.get_incident("1")
    two.get_incident("INC-2")
    with pytest.raises(Exception, match="404"):
        one.get_incident("404")
    assert counter.total() == 3
    assert counter.count(route="/v2/incidents/{id}", status=200) == 2
    assert counter.by_route() == {"GET /v2/incidents/{id}": 3}
    assert counter.snapshot() == {"GET /v2/incidents/{id}": {"200": 2, "404": 1}}
    assert one.counter is counter


def test_constructor_checks() -> None:
    """Bad keys and URLs are configuration errors that do not echo the key."""
    with pytest.raises(ConfigError, match="empty"):
        IncidentIOClient(api_key="  ")
    with pytest.raises(ConfigError, match="spaces or control") as info:
        IncidentIOClient(api_key="abc\r\nX-Evil: 1")
    assert "Evil" not in str(info.value)
    with pytest.raises(ConfigError, match="base_url"):
        IncidentIOClient(base_url="api.incident.io", api_key="k")
    client = IncidentIOClient(base_url="http://127.0.0.1:8080/", api_key=API_KEY)
    assert client.base_url == "http://127.0.0.1:8080"
    assert client.rate_limiter.rate_per_minute == 1000
    client.close()
