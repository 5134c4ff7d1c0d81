"""Follow-ups through /v3: the query the client sends, its paging to the end, the model."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from automations.incidentio import FollowUp, IncidentFilter, TimeWindow
from automations.incidentio.follow_ups import listing_mode, listing_modes
from tests.openapi_conformance import Conformance
from tests.test_client_models import Recorder, follow_up, make_client, ok


def pages_of(items: list[dict[str, Any]], size: int) -> Any:
    """A /v3/follow_ups handler: oldest first, ``after`` set on every full page."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v3/follow_ups":
            return ok({"follow_up": items[0]})
        after = request.url.params.get("after")
        start = 0 if after is None else [i["id"] for i in items].index(after) + 1
        chosen = items[start : start + size]
        meta: dict[str, Any] = {"page_size": size}
        if len(chosen) == size:
            meta["after"] = chosen[-1]["id"]  # there *may* be more
        return ok({"follow_ups": chosen, "pagination_meta": meta})

    return handle


def test_a_full_last_page_is_followed_by_one_empty_page(openapi: Conformance) -> None:
    """500 follow-ups at 250 a page: three requests, the last one empty, every item once."""
    items = [follow_up(n) for n in range(1, 501)]
    recorder = Recorder(openapi, pages_of(items, 250))
    with make_client(recorder) as client:
        got = list(client.iter_follow_ups())
    assert [f.id for f in got] == [i["id"] for i in items]
    assert [dict(p).get("after") for p in recorder.params] == [None, "01FU0250", "01FU0500"]
    assert all(("page_size", "250") in p for p in recorder.params)
    assert all(r.url.path == "/v3/follow_ups" for r in recorder.requests)


def test_a_short_page_ends_the_listing(openapi: Conformance) -> None:
    """260 follow-ups: two requests; the API's missing cursor ends it."""
    recorder = Recorder(openapi, pages_of([follow_up(n) for n in range(1, 261)], 250))
    with make_client(recorder) as client:
        assert len(list(client.iter_follow_ups())) == 260
    assert len(recorder.requests) == 2


def test_filters_are_encoded_as_the_api_reads_them(openapi: Conformance) -> None:
    """incident, mode, team and both time windows reach the API as documented pairs."""
    recorder = Recorder(openapi, pages_of([follow_up(1)], 100))
    since = datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    with make_client(recorder) as client:
        list(
            client.iter_follow_ups(
                incident_id="01HINC1",
                incident_mode="test",
                assignee_team_id="01TEAM1",
                created_at=TimeWindow(date_range=(date(2025, 12, 2), date(2025, 12, 8))),
                updated_at=TimeWindow(gte=since, lte=date(2026, 2, 1)),
                page_size=100,
            )
        )
    assert recorder.params == [
        [
            ("incident_id", "01HINC1"),
            ("incident_mode", "test"),
            ("assignee_team_id", "01TEAM1"),
            ("created_at[date_range]", "2025-12-02~2025-12-08"),
            ("updated_at[gte]", "2026-01-01T00:00:00Z"),
            ("updated_at[lte]", "2026-02-01"),
            ("page_size", "100"),
        ]
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"incident_mode": "live"}, "incident_mode must be one of"),
        ({"page_size": 251}, "over the API's maximum of 250"),
        ({"incident_id": "../x"}, "not an incident.io ID"),
        ({"updated_at": TimeWindow(gte=datetime(2026, 1, 1))}, "has no timezone"),
        ({"updated_at": TimeWindow()}, "give at least one of gte, lte, date_range"),
    ],
)
def test_bad_arguments_are_refused_before_any_request(
    openapi: Conformance, kwargs: dict[str, Any], message: str
) -> None:
    """A mode, size, ID or window the API would refuse is a ValueError, with no request sent."""
    recorder = Recorder(openapi, pages_of([], 25))
    with make_client(recorder) as client, pytest.raises(ValueError, match=message):
        client.iter_follow_ups(**kwargs)
    assert recorder.requests == []


def test_get_one_follow_up(openapi: Conformance) -> None:
    """GET /v3/follow_ups/{id} returns the typed follow-up, team, priority and category included."""
    recorder = Recorder(openapi, pages_of([follow_up(7, "not_doing")], 25))
    with make_client(recorder) as client:
        one = client.get_follow_up("01FU0007")
    assert [r.url.path for r in recorder.requests] == ["/v3/follow_ups/01FU0007"]
    assert one.assignee_team is not None
    assert one.assignee_team.name == "Payments"
    assert one.priority is not None
    assert one.priority.rank == 10
    assert one.category is not None
    assert one.category.description == "Infra"
    assert one.is_done
    assert not one.is_outstanding


def test_the_model_tolerates_new_statuses_and_fields() -> None:
    """An unknown status holds the incident open; unknown keys are kept; done is status only."""
    newer = FollowUp.model_validate({**follow_up(1, "archived"), "snoozed_until": "later"})
    assert not newer.is_done
    assert not newer.is_deleted
    assert not newer.is_outstanding
    assert newer.model_extra == {"snoozed_until": "later"}
    early = FollowUp.model_validate({**follow_up(2), "completed_at": "2026-01-01T00:00:00Z"})
    assert early.completed_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert not early.is_done  # completed_at on an outstanding follow-up is not "done"
    states = {s: FollowUp.model_validate(follow_up(3, s)) for s in ("completed", "not_doing")}
    assert all(f.is_done for f in states.values())
    assert FollowUp.model_validate(follow_up(4, "deleted")).is_deleted


def test_listings_cover_every_mode_a_query_selects() -> None:
    """One default listing covers standard and retrospective; each other mode needs its own."""
    plain = IncidentFilter().status_category(one_of=["learning"])
    assert listing_modes([plain]) == [None]
    assert listing_modes([plain.mode(one_of=["retrospective", "standard"])]) == [None]
    assert listing_modes([plain.mode(one_of=["test"])]) == ["test"]
    both = [plain, plain.mode(one_of=["tutorial", "test", "standard"])]
    assert listing_modes(both) == [None, "test", "tutorial"]
    assert [listing_mode(m) for m in ("standard", "retrospective", "test")] == [None, None, "test"]
