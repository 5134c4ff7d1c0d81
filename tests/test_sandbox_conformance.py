"""Every sandbox route answers in the real schema's shapes, errors included."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.openapi_conformance import Conformance
from tests.sandbox_server import SandboxControl


@pytest.fixture
def api(sandbox: SandboxControl) -> Iterator[httpx.Client]:
    with sandbox.api() as client:
        yield client


def check(openapi: Conformance, response: httpx.Response) -> Any:
    """Validate one response against the schema and return its body."""
    body = response.json()
    openapi.validate_response(
        response.request.method, response.request.url.path, response.status_code, body
    )
    assert response.headers["x-request-id"]
    if response.status_code >= 400:
        assert body["request_id"] == response.headers["x-request-id"]
    return body


CATALOG_ROUTES = [
    ("/v1/severities", "severities"),
    ("/v1/incident_statuses", "incident_statuses"),
    ("/v1/incident_types", "incident_types"),
    ("/v2/incident_roles", "incident_roles"),
    ("/v2/custom_fields", "custom_fields"),
    ("/v2/incident_timestamps", "incident_timestamps"),
]


@pytest.mark.parametrize(("path", "key"), CATALOG_ROUTES)
def test_catalog_routes_validate(
    api: httpx.Client, openapi: Conformance, path: str, key: str
) -> None:
    """Each catalog list validates and is not empty."""
    body = check(openapi, api.get(path))
    assert body[key]


def test_catalog_has_the_seeded_organisation(api: httpx.Client) -> None:
    """Severities, statuses in every category, types, roles and fields are the documented ones."""
    severities = api.get("/v1/severities").json()["severities"]
    assert [(s["name"], s["rank"]) for s in severities] == [
        ("Minor", 1),
        ("Major", 2),
        ("Critical", 3),
    ]
    statuses = api.get("/v1/incident_statuses").json()["incident_statuses"]
    assert {s["category"] for s in statuses} == {
        "triage",
        "live",
        "learning",
        "closed",
        "declined",
        "merged",
        "canceled",
        "paused",
    }
    types = api.get("/v1/incident_types").json()["incident_types"]
    assert [t["name"] for t in types if t["is_default"]] == ["Default"]
    assert [t["name"] for t in types if t["private_incidents_only"]] == ["Security"]
    roles = api.get("/v2/incident_roles").json()["incident_roles"]
    assert {r["role_type"] for r in roles} == {"lead", "reporter", "custom"}
    fields = api.get("/v2/custom_fields").json()["custom_fields"]
    assert {f["name"]: f["field_type"] for f in fields} == {
        "Team": "single_select",
        "Affected service": "text",
        "Phase": "single_select",
    }
    stamps = api.get("/v2/incident_timestamps").json()["incident_timestamps"]
    assert [t["name"] for t in stamps] == [
        "Reported at",
        "Impact started",
        "Accepted at",
        "Resolved at",
        "Closed at",
    ]


def test_catalog_show_routes_validate(api: httpx.Client, openapi: Conformance) -> None:
    """Severity and status by ID validate; unknown IDs are 404 envelopes."""
    severity = api.get("/v1/severities").json()["severities"][0]
    assert check(openapi, api.get(f"/v1/severities/{severity['id']}"))["severity"] == severity
    status = api.get("/v1/incident_statuses").json()["incident_statuses"][0]
    shown = check(openapi, api.get(f"/v1/incident_statuses/{status['id']}"))
    assert shown["incident_status"] == status
    for path in ("/v1/severities/nope", "/v1/incident_statuses/nope"):
        response = api.get(path)
        assert response.status_code == 404
        assert check(openapi, response)["type"] == "not_found"


def test_custom_field_options_validate(api: httpx.Client, openapi: Conformance) -> None:
    """Each field's options validate and page by ``after``; bad queries are envelopes."""
    fields = api.get("/v2/custom_fields").json()["custom_fields"]
    by_type = {f["field_type"]: f for f in fields}
    team = next(f for f in fields if f["name"] == "Team")
    query = {"custom_field_id": team["id"]}
    body = check(openapi, api.get("/v1/custom_field_options", params=query))
    options = body["custom_field_options"]
    assert len(options) >= 3
    assert body["pagination_meta"] == {"page_size": 25}
    assert {o["custom_field_id"] for o in options} == {team["id"]}
    assert [o["sort_key"] for o in options] == sorted(o["sort_key"] for o in options)
    paged: list[str] = []
    after = None
    while True:
        params = {**query, "page_size": "2", **({"after": after} if after else {})}
        page = check(openapi, api.get("/v1/custom_field_options", params=params))
        paged += [o["id"] for o in page["custom_field_options"]]
        after = page["pagination_meta"].get("after")
        if after is None:
            break
    assert paged == [o["id"] for o in options]
    text = check(
        openapi,
        api.get("/v1/custom_field_options", params={"custom_field_id": by_type["text"]["id"]}),
    )
    assert text["custom_field_options"] == []
    for params, status, field in (
        ({}, 422, "custom_field_id"),
        ({**query, "page_size": "251"}, 422, "page_size"),
        ({**query, "after": "01NOPE"}, 422, "after"),
        ({"custom_field_id": "01NOPE"}, 404, None),
    ):
        response = api.get("/v1/custom_field_options", params=params)
        assert response.status_code == status, params
        error = check(openapi, response)
        if field is not None:
            assert error["errors"][0]["source"] == {"field": field, "pointer": f"/{field}"}


def test_full_list_page_validates(api: httpx.Client, openapi: Conformance) -> None:
    """A 250-incident page of every mode validates, with the documented incident fields."""
    params = {"page_size": "250", "mode[one_of]": ["standard", "retrospective", "test", "tutorial"]}
    body = check(openapi, api.get("/v2/incidents", params=params))
    incidents = body["incidents"]
    assert len(incidents) == 200
    assert body["pagination_meta"] == {"page_size": 250, "total_record_count": 200}
    assert {i["incident_status"]["category"] for i in incidents} >= {
        "triage",
        "live",
        "learning",
        "closed",
        "declined",
        "merged",
        "canceled",
        "paused",
    }
    assert {i["mode"] for i in incidents} >= {"standard", "test", "tutorial"}
    assert any("severity" not in i for i in incidents)
    assert any(i.get("postmortem_document_url") for i in incidents)
    private = sum(i["visibility"] == "private" for i in incidents)
    assert 10 <= private <= 50
    for incident in incidents:
        assert incident["reference"].startswith("INC-")
        number = incident["reference"].removeprefix("INC-")
        assert incident["permalink"] == f"https://app.incident.io/sandbox/incidents/{number}"
        assert len(incident["id"]) == 26
        assert isinstance(incident["slack_channel_id"], str)


def test_show_edit_create_validate(api: httpx.Client, openapi: Conformance) -> None:
    """Show, edit and create answers validate against their 200 schemas."""
    incident = api.get("/v2/incidents").json()["incidents"][0]
    check(openapi, api.get(f"/v2/incidents/{incident['id']}"))
    edit = {"incident": {"summary": "Updated by a test"}, "notify_incident_channel": False}
    body = check(openapi, api.post(f"/v2/incidents/{incident['id']}/actions/edit", json=edit))
    assert body["incident"]["summary"] == "Updated by a test"
    severity = api.get("/v1/severities").json()["severities"][0]
    create = {"idempotency_key": "k1", "visibility": "public", "severity_id": severity["id"]}
    openapi.validate_request("POST", "/v2/incidents", body=create)
    created = check(openapi, api.post("/v2/incidents", json=create))["incident"]
    assert created["slack_channel_id"] == ""


def test_side_lists_validate(api: httpx.Client, openapi: Conformance) -> None:
    """incident_updates, follow_ups and users validate, with and without their filters."""
    updates = check(openapi, api.get("/v2/incident_updates", params={"page_size": 250}))
    first = updates["incident_updates"][0]
    by_incident = api.get("/v2/incident_updates", params={"incident_id": first["incident_id"]})
    assert {u["incident_id"] for u in check(openapi, by_incident)["incident_updates"]} == {
        first["incident_id"]
    }
    follow_ups = check(openapi, api.get("/v3/follow_ups", params={"page_size": 250}))["follow_ups"]
    assert {f["status"] for f in follow_ups} >= {"outstanding", "completed"}
    check(openapi, api.get("/v3/follow_ups", params={"incident_mode": "test"}))
    users = check(openapi, api.get("/v2/users", params={"page_size": 10_000}))["users"]
    assert len(users) == 25
    one = check(openapi, api.get("/v2/users", params={"email": users[3]["email"]}))
    assert [u["id"] for u in one["users"]] == [users[3]["id"]]
    by_slack = api.get("/v2/users", params={"slack_user_id": users[4]["slack_user_id"]})
    assert [u["id"] for u in check(openapi, by_slack)["users"]] == [users[4]["id"]]


def test_users_and_updates_paginate(api: httpx.Client, openapi: Conformance) -> None:
    """Users and incident updates follow ``after`` and omit it on the last page."""
    seen: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"page_size": 10, **({"after": after} if after else {})}
        body = check(openapi, api.get("/v2/users", params=params))
        seen += [u["id"] for u in body["users"]]
        after = body["pagination_meta"].get("after")
        if after is None:
            break
    assert len(seen) == len(set(seen)) == 25
    total = len(
        api.get("/v2/incident_updates", params={"page_size": 250}).json()["incident_updates"]
    )
    first = api.get("/v2/incident_updates", params={"page_size": 5}).json()
    assert len(first["incident_updates"]) == 5
    assert first["pagination_meta"]["after"]
    assert total > 5
    too_big = api.get("/v2/incident_updates", params={"page_size": 251})
    assert too_big.status_code == 422
    assert check(openapi, too_big)


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "type_", "field"),
    [
        (
            "GET",
            "/v2/incidents",
            {"params": {"page_size": "501"}},
            422,
            "validation_error",
            "page_size",
        ),
        (
            "GET",
            "/v2/incidents",
            {"params": {"status_category[is]": "live"}},
            422,
            "validation_error",
            "status_category[is]",
        ),
        ("GET", "/v2/incidents", {"params": {"after": "01NOPE"}}, 422, "validation_error", "after"),
        ("GET", "/v2/incidents/01NOPE", {}, 404, "not_found", None),
        (
            "POST",
            "/v2/incidents/999999/actions/edit",
            {"json": {"incident": {}, "notify_incident_channel": False}},
            404,
            "not_found",
            None,
        ),
        (
            "POST",
            "/v2/incidents",
            {"json": {"visibility": "public"}},
            422,
            "validation_error",
            "idempotency_key",
        ),
        ("POST", "/v2/incidents", {"content": b"{not json"}, 400, "invalid_request_error", None),
        (
            "GET",
            "/v2/users",
            {"params": {"page_size": "10001"}},
            422,
            "validation_error",
            "page_size",
        ),
    ],
)
def test_error_envelopes_validate(
    api: httpx.Client,
    openapi: Conformance,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    type_: str,
    field: str | None,
) -> None:
    """Each error kind is the documented envelope with the right type and source.field."""
    response = api.request(method, path, **kwargs)
    assert response.status_code == status
    body = check(openapi, response)
    assert body["type"] == type_
    assert body["status"] == status
    if field is not None:
        assert body["errors"][0]["source"]["field"] == field
        assert body["errors"][0]["source"]["pointer"]


def test_unauthenticated_requests_are_401(sandbox: SandboxControl, openapi: Conformance) -> None:
    """No key is missing_authorization_material; a wrong key is rejected too."""
    missing = httpx.get(f"{sandbox.base_url}/v2/incidents")
    assert missing.status_code == 401
    body = check(openapi, missing)
    assert body["type"] == "authentication_error"
    assert body["errors"][0]["code"] == "missing_authorization_material"
    with sandbox.api(api_key="wrong") as client:
        wrong = client.get("/v1/severities")
    assert wrong.status_code == 401
    assert check(openapi, wrong)["type"] == "authentication_error"
    assert "x-ratelimit-limit" not in wrong.headers


def test_unknown_route_and_method(api: httpx.Client) -> None:
    """Unknown paths are 404 and wrong methods 405, both in the envelope."""
    missing = api.get("/v2/nope")
    assert missing.status_code == 404
    assert missing.json()["type"] == "not_found"
    wrong = api.delete("/v2/incidents")
    assert wrong.status_code == 405
    assert wrong.json()["type"] == "method_not_allowed"
