"""Pagination of GET /v2/incidents: cursors, page sizes and totals (section 5)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.sandbox_server import SandboxControl

ALL_MODES = ["standard", "retrospective", "test", "tutorial"]


@pytest.fixture
def api(sandbox: SandboxControl) -> Iterator[httpx.Client]:
    with sandbox.api() as client:
        yield client


def walk(api: httpx.Client, params: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Every ID in order, following pagination_meta.after; also each page's meta."""
    ids: list[str] = []
    metas: list[dict[str, Any]] = []
    after = None
    while True:
        page_params = {**params, **({"after": after} if after else {})}
        response = api.get("/v2/incidents", params=page_params)
        assert response.status_code == 200, response.text
        body = response.json()
        ids += [incident["id"] for incident in body["incidents"]]
        metas.append(body["pagination_meta"])
        after = body["pagination_meta"].get("after")
        if after is None:
            return ids, metas


def test_ten_thousand_incidents_page_exactly_once(sandbox: SandboxControl) -> None:
    """A 10k walk at page_size 250 sees every incident once, newest first, and is quick."""
    sandbox.reset(incidents=10_000)
    with sandbox.api() as api:
        ids, metas = walk(api, {"page_size": 250, "mode[one_of]": ALL_MODES})
    assert len(ids) == len(set(ids)) == 10_000
    assert len(metas) == 40
    assert all(meta["total_record_count"] == 10_000 for meta in metas)
    assert all(meta["page_size"] == 250 for meta in metas)
    assert "after" not in metas[-1]  # an exactly-full last page has no cursor


def test_default_page_and_newest_first(api: httpx.Client) -> None:
    """The default page is 25 incidents, newest first, with a cursor and the total."""
    body = api.get("/v2/incidents").json()
    incidents = body["incidents"]
    assert len(incidents) == 25
    created = [incident["created_at"] for incident in incidents]
    assert created == sorted(created, reverse=True)
    assert body["pagination_meta"]["page_size"] == 25
    assert body["pagination_meta"]["after"] == incidents[-1]["id"]
    standard = body["pagination_meta"]["total_record_count"]
    everything = api.get("/v2/incidents", params={"mode[one_of]": ALL_MODES}).json()
    assert standard < everything["pagination_meta"]["total_record_count"] == 200


def test_partial_last_page_omits_after(api: httpx.Client) -> None:
    """Walking by 30 gives a short last page without a cursor and no duplicates."""
    ids, metas = walk(api, {"page_size": 30, "mode[one_of]": ALL_MODES})
    assert len(ids) == len(set(ids)) == 200
    assert all("after" in meta for meta in metas[:-1])
    assert "after" not in metas[-1]


def test_oldest_first_is_the_reverse(api: httpx.Client) -> None:
    """sort_by=created_at_oldest_first pages the same set in reverse order."""
    newest, _ = walk(api, {"page_size": 40})
    oldest, _ = walk(api, {"page_size": 40, "sort_by": "created_at_oldest_first"})
    assert oldest == newest[::-1]


def test_cursor_survives_its_incident_leaving_the_filter(
    sandbox: SandboxControl, api: httpx.Client
) -> None:
    """``after`` is a position in response order, even if that incident no longer matches."""
    params: dict[str, Any] = {"status_category[one_of]": "live", "page_size": 5}
    first = api.get("/v2/incidents", params=params).json()
    cursor = first["pagination_meta"]["after"]
    sandbox.update_incident(cursor, status="Closed")
    second = api.get("/v2/incidents", params={**params, "after": cursor}).json()
    full, _ = walk(api, {"status_category[one_of]": "live", "page_size": 250})
    first_ids = [i["id"] for i in first["incidents"]]
    assert [i["id"] for i in second["incidents"]] == full[4:9]
    assert first_ids[:4] == full[:4]


@pytest.mark.parametrize(
    ("page_size", "status", "served"),
    [
        ("1", 200, 1),
        ("250", 200, 200),
        ("300", 200, 200),
        ("500", 200, 200),
        ("501", 422, None),
        ("0", 422, None),
        ("ten", 422, None),
    ],
)
def test_page_size_limits(
    api: httpx.Client, page_size: str, status: int, served: int | None
) -> None:
    """1..250 served, 251..500 clamped to 250 by default, others 422 on page_size."""
    response = api.get("/v2/incidents", params={"page_size": page_size, "mode[one_of]": ALL_MODES})
    assert response.status_code == status
    if served is None:
        assert response.json()["errors"][0]["source"]["field"] == "page_size"
    else:
        body = response.json()
        assert len(body["incidents"]) == served
        assert body["pagination_meta"]["page_size"] == min(int(page_size), 250)


def test_large_pages_can_be_accepted(sandbox: SandboxControl) -> None:
    """With large_page_size=accept, 251..500 is served as asked."""
    sandbox.reset(incidents=400, large_page_size="accept")
    with sandbox.api() as api:
        body = api.get("/v2/incidents", params={"page_size": 400, "mode[one_of]": ALL_MODES})
    assert len(body.json()["incidents"]) == 400
    assert body.json()["pagination_meta"]["page_size"] == 400


def test_unknown_after_is_422(api: httpx.Client) -> None:
    """An ``after`` naming no incident is a 422 on the after field."""
    response = api.get("/v2/incidents", params={"after": "01HZZZZZZZZZZZZZZZZZZZZZZZ"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["source"]["field"] == "after"
