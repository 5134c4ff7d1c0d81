"""sync_status with require.follow_ups against the sandbox's /v3 follow-ups, end to end."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from automations.ledger import Ledger
from tests.engine_harness import Harness

DAY = timedelta(days=1)
CLOSE_DONE = """
[[rules]]
name = "close-done"
type = "sync_status"
every = "15m"
where = { status_category = ["learning"] }
require = { follow_ups = "completed" }
to_status = "Closed"
"""


def follow_up_requests(harness: Harness) -> list[dict[str, Any]]:
    """The follow-up listings the sandbox received, in order (v2 ones included, to be caught)."""
    return [r for r in harness.sandbox.requests() if "follow_ups" in r["path"]]


def reasons(harness: Harness) -> dict[str, str]:
    with Ledger(harness.ledger_path) as ledger:
        return {event.incident_id: event.reason for event in ledger.events.history()}


def test_a_follow_up_list_longer_than_a_page_is_read_to_the_end(harness: Harness) -> None:
    """An outstanding follow-up on page 2 holds the incident; once not_doing, it closes."""
    harness.write(CLOSE_DONE)
    long = harness.add("Many follow-ups", age=20 * DAY, status="Documenting")
    items = [{"title": f"Task {n}", "status": "completed"} for n in range(259)]
    harness.sandbox.update_incident(
        long["id"], follow_ups=[*items, {"title": "The last one", "status": "outstanding"}]
    )
    mixed = harness.add(
        "Done or dropped",
        age=20 * DAY,
        status="Documenting",
        follow_ups=[
            {"title": "Done", "status": "completed"},
            {"title": "Dropped", "status": "not_doing"},
            {"title": "Removed", "status": "deleted"},
        ],
    )
    deleted_only = harness.add(
        "Only a deleted one",
        age=20 * DAY,
        status="Documenting",
        follow_ups=[{"title": "Removed", "status": "deleted"}],
    )
    none = harness.add("No follow-ups", age=20 * DAY, status="Documenting")
    harness.sandbox.clear_requests()

    (report,) = harness.cycle()

    assert report.ok
    assert harness.status(long["id"]) == "Documenting"  # its outstanding one is on page 2
    for closed in (mixed, deleted_only, none):
        assert harness.status(closed["id"]) == "Closed"
    why = reasons(harness)
    assert why[mixed["id"]].endswith("all 2 follow-ups done")  # the deleted one is not counted
    assert why[deleted_only["id"]].endswith("no follow-ups")
    assert why[none["id"]].endswith("no follow-ups")
    listings = follow_up_requests(harness)
    assert {r["path"] for r in listings} == {"/v3/follow_ups"}  # never /v2/follow_ups
    total = 260 + 3 + 1
    polled = [r for r in listings if "incident_id=" not in r["query"]]
    assert len(polled) == total // 250 + 1  # 250 a page, following the cursor to the end
    assert all("page_size=250" in r["query"] for r in polled)
    rechecks = [r for r in listings if "incident_id=" in r["query"]]
    assert len(rechecks) == 3  # one fresh read per edit, each under a page

    outstanding = [
        f
        for page in _pages(harness, long["id"])
        for f in page["follow_ups"]
        if f["status"] == "outstanding"
    ]
    assert [f["title"] for f in outstanding] == ["The last one"]
    harness.sandbox.update_follow_up(outstanding[0]["id"], status="not_doing")
    harness.sandbox.clear_requests()

    (report,) = harness.cycle()

    assert report.applied == 1
    assert harness.status(long["id"]) == "Closed"
    assert reasons(harness)[long["id"]].endswith("all 260 follow-ups done")
    rechecks = [r for r in follow_up_requests(harness) if "incident_id=" in r["query"]]
    assert len(rechecks) == math.ceil(260 / 250)  # the re-check reads both pages too


def _pages(harness: Harness, incident_id: str) -> list[dict[str, Any]]:
    pages, after = [], None
    with harness.sandbox.api() as api:
        while True:
            params: dict[str, str] = {"incident_id": incident_id, "page_size": "250"}
            if after:
                params["after"] = after
            body = api.get("/v3/follow_ups", params=params).json()
            pages.append(body)
            after = body["pagination_meta"].get("after")
            if after is None:
                return pages


def test_a_full_last_page_costs_one_empty_page_more(harness: Harness) -> None:
    """Exactly 250 follow-ups: the API may have more, so the listing ends on an empty page."""
    harness.write(CLOSE_DONE)
    done = harness.add(
        "Exactly a page",
        age=20 * DAY,
        status="Documenting",
        follow_ups=[{"title": f"T{n}", "status": "completed"} for n in range(250)],
    )
    harness.sandbox.clear_requests()

    (report,) = harness.cycle()

    assert report.applied == 1
    assert harness.status(done["id"]) == "Closed"
    polled = [r for r in follow_up_requests(harness) if "incident_id=" not in r["query"]]
    assert len(polled) == 2
    assert "after=" in polled[1]["query"]


def test_a_rule_for_test_incidents_reads_their_follow_ups(harness: Harness) -> None:
    """Follow-ups of test incidents are listed with incident_mode=test, so an open one holds."""
    harness.write(CLOSE_DONE.replace('["learning"] }', '["learning"], mode = ["test"] }'))
    held = harness.add(
        "Test with work left",
        age=20 * DAY,
        status="Documenting",
        mode="test",
        follow_ups=[{"title": "Open", "status": "outstanding"}],
    )
    finished = harness.add(
        "Test, all done",
        age=20 * DAY,
        status="Documenting",
        mode="test",
        follow_ups=[{"title": "Done", "status": "completed"}],
    )
    harness.sandbox.clear_requests()

    (report,) = harness.cycle()

    assert report.ok
    assert report.planned == report.applied == 1  # held is never planned, not just re-checked
    assert harness.status(held["id"]) == "Documenting"
    assert harness.status(finished["id"]) == "Closed"
    queries = [r["query"] for r in follow_up_requests(harness)]
    assert sum("incident_mode=test" in q for q in queries) == len(queries) == 2  # list, re-check
