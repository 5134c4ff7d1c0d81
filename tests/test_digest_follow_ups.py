"""The digest's follow-ups section: what is left to do after recently closed incidents.

Pure builders first (clocks relative to a fixed ``NOW``), then the whole digest
through the sandbox: rows in both parts, a private incident's follow-up never
shown, the completed count, the requests it costs, and an API that refuses.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from automations.digest.follow_ups import FollowUps, build_follow_ups, follow_ups_url
from automations.digest.follow_ups_fetch import OUTLIER_AGE, plan_listings
from automations.digest.render import Renderer
from automations.incidentio import Incident
from automations.incidentio.models import FollowUp
from tests.digest_support import Clock, make_incident, open_digests, write_config
from tests.factories import NOW
from tests.openapi_conformance import Conformance
from tests.sandbox_server import SandboxControl

LONDON = ZoneInfo("Europe/London")
DAY = timedelta(days=1)


def closed(number: int, resolved_ago: timedelta, **options: Any) -> Incident:
    """A learning incident declared a day before it was resolved ``resolved_ago``."""
    return make_incident(
        f"Incident {number}",
        age=resolved_ago + DAY,
        status="Documenting",
        resolved_after=DAY,
        number=number,
        **options,
    )


def follow_up(
    incident: Incident, title: str, age: timedelta, status: str = "outstanding", **extra: Any
) -> FollowUp:
    created = NOW - age
    body: dict[str, Any] = {
        "id": f"FU-{title}",
        "incident_id": incident.id,
        "title": title,
        "status": status,
        "created_at": created.isoformat(),
        "updated_at": created.isoformat(),
        **extra,
    }
    return FollowUp.model_validate(body)


def build(follow_ups: list[FollowUp], incidents: list[Incident], **options: Any) -> FollowUps:
    return build_follow_ups(
        follow_ups=follow_ups,
        incidents=incidents,
        now=NOW,
        window_start=NOW - DAY,
        window_end=NOW,
        incidents_url="https://app.incident.io/acme/incidents",
        **options,
    )


# --- pure -----------------------------------------------------------------------------------


def test_outstanding_follow_ups_oldest_first_with_assignee_and_age() -> None:
    """Outstanding ones only, oldest first; a person by name (not email), else the team,
    else 'unassigned'; age from creation to now."""
    inc = closed(1, timedelta(days=2))
    person = {"id": "U1", "name": "Ada Lovelace", "email": "ada@example.com"}
    section = build(
        [
            follow_up(inc, "newest", timedelta(hours=1)),
            follow_up(inc, "oldest", timedelta(days=2), assignee=person),
            follow_up(
                inc, "middle", timedelta(hours=5), assignee_team={"id": "T1", "name": "Core"}
            ),
            follow_up(inc, "done", timedelta(days=3), status="completed"),
            follow_up(inc, "dropped", timedelta(days=3), status="not_doing"),
        ],
        [inc],
    )
    assert [r.title for r in section.rows] == ["oldest", "middle", "newest"]
    assert [r.assignee for r in section.rows] == ["Ada Lovelace", "team Core", "unassigned"]
    assert [r.age for r in section.rows] == [
        timedelta(days=2),
        timedelta(hours=5),
        timedelta(hours=1),
    ]
    assert section.rows[0].reference == "INC-1"
    assert section.rows[0].link == "https://app.incident.io/acme/incidents/1"
    assert section.outstanding == 3


def test_only_incidents_resolved_within_the_span_count() -> None:
    """An incident resolved before the span began, or still live, lends no follow-ups; a
    longer span (a weekly digest's 8 weeks) takes it in."""
    recent, old = closed(1, timedelta(days=2)), closed(2, timedelta(days=10))
    live = make_incident("Live", age=timedelta(days=1), number=3)
    items = [
        follow_up(recent, "recent", timedelta(hours=1)),
        follow_up(old, "old", timedelta(days=9)),
        follow_up(live, "live", timedelta(hours=2)),
    ]
    assert [r.title for r in build(items, [recent, old, live]).rows] == ["recent"]
    weekly = build(items, [recent, old, live], span=timedelta(weeks=8))
    assert [r.title for r in weekly.rows] == ["old", "recent"]
    assert weekly.span_words == "8 weeks"


def test_completed_follow_ups_are_counted_in_the_window_only() -> None:
    """Completed in [window_start, window_end): counted; before the window or not done: not."""
    inc = closed(1, timedelta(days=2))

    def done(title: str, ago: timedelta) -> FollowUp:
        return follow_up(
            inc, title, timedelta(days=2), "completed", completed_at=(NOW - ago).isoformat()
        )

    section = build(
        [
            done("in", timedelta(hours=3)),
            done("edge", DAY),
            done("before", DAY + timedelta(seconds=1)),
            follow_up(
                inc, "open", timedelta(hours=3), completed_at=(NOW - timedelta(hours=1)).isoformat()
            ),
        ],
        [inc],
    )
    assert section.completed == 2  # "in" and "edge" (the window's start is included)


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        ({}, ["public"]),
        ({"include_private": True}, ["public", "private"]),
        ({"include_test": True}, ["public", "test"]),
        ({"categories": ["closed"]}, []),
    ],
)
def test_follow_ups_of_incidents_the_audience_may_not_see_are_left_out(
    options: dict[str, Any], shown: list[str]
) -> None:
    """Private and test incidents' follow-ups (titles and counts) only when the digest shows
    those incidents; a ``where`` that leaves the incident out leaves its follow-ups out."""
    public = closed(1, timedelta(days=1))
    private = closed(2, timedelta(days=1), private=True)
    test = closed(3, timedelta(days=1), mode="test")
    items = [
        follow_up(public, "public", timedelta(hours=3)),
        follow_up(private, "private", timedelta(hours=2)),
        follow_up(test, "test", timedelta(hours=1)),
        follow_up(
            private, "private done", timedelta(hours=2), "completed", completed_at=NOW.isoformat()
        ),
    ]
    section = build(items, [public, private, test], **options)
    assert [r.title for r in section.rows] == shown
    assert section.outstanding == len(shown)


def test_rows_are_capped_with_a_link_to_the_rest() -> None:
    """Past the cap the oldest are kept and 'and N more' links to incident.io's follow-ups,
    in both parts."""
    from tests.test_digest_render import sample

    inc = closed(1, timedelta(days=1))
    items = [follow_up(inc, f"task {n:02d}", timedelta(hours=30 - n)) for n in range(25)]
    section = build(items, [inc], limit=20)
    assert [r.title for r in section.rows] == [f"task {n:02d}" for n in range(20)]
    assert section.more == 5
    assert section.more_url == "https://app.incident.io/acme/follow-ups"
    rendered = Renderer("digest", LONDON).render(
        replace(sample(), follow_ups=section, sections=("follow_ups",)), "x", 200
    )
    assert "and 5 more on incident.io" in rendered.html
    assert 'href="https://app.incident.io/acme/follow-ups"' in rendered.html
    assert "... and 5 more: https://app.incident.io/acme/follow-ups" in rendered.text
    assert "task 20" not in rendered.text


def test_follow_ups_page_is_found_next_to_the_incident_list() -> None:
    """The org's follow-ups page comes from its incident list URL; a generic one otherwise."""
    assert follow_ups_url("https://app.incident.io/acme/incidents") == (
        "https://app.incident.io/acme/follow-ups"
    )
    assert follow_ups_url("https://example.com/x") == "https://app.incident.io/follow-ups"


def test_listings_are_one_per_mode_with_far_older_incidents_read_alone() -> None:
    """One listing per incident mode from the oldest incident's creation; an incident
    declared long before the span is read by ID; many such make one long listing instead."""
    span_start = NOW - timedelta(days=7)
    young = [closed(n, timedelta(days=n)) for n in (1, 2)]
    test = closed(3, timedelta(days=1), mode="test")
    ancient = make_incident("Ancient", age=timedelta(days=200), status="Documenting", number=9)
    listings = plan_listings([*young, test, ancient], span_start)
    assert [(item.incident_mode, item.created_since, item.incident_id) for item in listings] == [
        (None, young[1].created_at, None),
        (None, None, ancient.id),
        ("test", test.created_at, None),
    ]
    many = [
        make_incident(
            f"Old {n}", age=OUTLIER_AGE + timedelta(days=8 + n), status="Documenting", number=20 + n
        )
        for n in range(4)
    ]
    merged = plan_listings([*young, *many], span_start)
    assert [(item.created_since, item.incident_id) for item in merged] == [
        (min(i.created_at for i in many), None)
    ]


# --- through the sandbox ---------------------------------------------------------------------


def _first_user(sandbox: SandboxControl) -> dict[str, Any]:
    with sandbox.api() as api:
        users: list[dict[str, Any]] = api.get("/v2/users", params={"page_size": 25}).json()["users"]
    return next(u for u in users if u.get("name"))


def _closed_incident(
    sandbox: SandboxControl, now: datetime, resolved_ago: timedelta, **fields: Any
) -> dict[str, Any]:
    return sandbox.add_incident(
        status="Documenting",
        created_at=(now - resolved_ago - DAY).isoformat(),
        timestamps={"Resolved at": (now - resolved_ago).isoformat()},
        **fields,
    )


def test_digest_lists_outstanding_follow_ups_and_never_a_private_one(
    tmp_path: Path, sandbox: SandboxControl, openapi: Conformance
) -> None:
    """Outstanding follow-ups of a recently resolved incident appear in both parts, oldest
    first with assignee and age; a private incident's and a too-old incident's never do; a
    follow-up completed in the window adds one to the count. Costs one follow-ups request."""
    now = sandbox.now()
    person = _first_user(sandbox)

    def ago(hours: float) -> str:
        return (now - timedelta(hours=hours)).isoformat()

    public = _closed_incident(
        sandbox,
        now,
        timedelta(days=2),
        name="Ledger replay stalled",
        follow_ups=[
            {
                "title": "Backfill the stalled ledger replay",
                "assignee": person["id"],
                "created_at": ago(40),
            },
            {
                "title": "Alert on replay lag per shard",
                "assignee_team": "Payments",
                "created_at": ago(30),
            },
        ],
    )
    _closed_incident(
        sandbox,
        now,
        timedelta(days=1),
        visibility="private",
        follow_ups=[{"title": "Rotate the leaked signing key", "created_at": ago(20)}],
    )
    _closed_incident(
        sandbox,
        now,
        timedelta(days=12),
        follow_ups=[{"title": "Too old to be recent", "created_at": ago(24 * 11)}],
    )
    config = write_config(tmp_path, sandbox.base_url, 2525)
    clock = Clock(now)
    runtime, digests = open_digests(config, clock)
    try:
        sandbox.clear_requests()
        before = digests.preview("daily")
        requests = sandbox.requests()
        assert before.data.follow_ups is not None
        # Completing one in the app counts it, and takes it off the list.
        target = next(
            f for f in _follow_ups_of(sandbox, public["id"]) if f["title"].startswith("Alert on")
        )
        sandbox.update_follow_up(target["id"], status="completed")
        sandbox.advance_clock(60)
        clock.advance(seconds=60)
        after = digests.preview("daily")
    finally:
        runtime.close()
    for part in (before.text, before.html):
        assert "Backfill the stalled ledger replay" in part
        assert "Alert on replay lag per shard" in part
        assert part.index("Backfill the stalled ledger replay") < part.index("Alert on replay")
        assert person["name"] in part
        assert "team Payments" in part
        assert public["reference"] in part
        assert "Rotate the leaked signing key" not in part
        assert "Too old to be recent" not in part
    assert "Backfill the stalled ledger replay" in before.text.split("FOLLOW-UPS")[1]
    assert "1d 16h old" in before.text  # 40 hours
    assert after.data.follow_ups is not None
    assert after.data.follow_ups.completed == before.data.follow_ups.completed + 1
    assert after.data.follow_ups.outstanding == before.data.follow_ups.outstanding - 1
    assert "Alert on replay lag per shard" not in after.text
    assert f"{after.data.follow_ups.completed} completed since" in after.text
    follow_up_reads = [r for r in requests if r["path"] == "/v3/follow_ups"]
    assert len(follow_up_reads) == 1
    assert "incident_id" not in str(follow_up_reads[0])
    incident_reads = [r for r in requests if r["path"] == "/v2/incidents"]
    # live, and updated since the trends' comparison began (further back than the span):
    # the recently resolved incidents come with them, no third query
    assert len(incident_reads) == 2
    for entry in requests:
        openapi.validate_request(
            entry["method"], entry["path"], entry["query_pairs"], entry["body"]
        )


@pytest.mark.parametrize(
    ("cron", "span", "words"),
    [
        ("0 8 * * mon-fri", timedelta(days=7), "7 days"),
        ("0 8 * * mon", timedelta(weeks=8), "8 weeks"),
    ],
)
def test_without_trends_one_query_reads_the_span(
    tmp_path: Path, sandbox: SandboxControl, cron: str, span: timedelta, words: str
) -> None:
    """Without the trends section, one incident query reads the learning and closed incidents
    updated since the span began: 7 days for a daily digest, 8 weeks for a weekly one."""
    config = write_config(
        tmp_path, sandbox.base_url, 2525, cron=cron, extra='sections = ["follow_ups"]\n'
    )
    now = sandbox.now()
    runtime, digests = open_digests(config, Clock(now))
    try:
        sandbox.clear_requests()
        rendered = digests.preview("daily")
    finally:
        runtime.close()
    reads = [r["query_pairs"] for r in sandbox.requests() if r["path"] == "/v2/incidents"]
    since = (now - span).date().isoformat()
    resolved = [
        ["status_category[one_of]", "closed"],
        ["status_category[one_of]", "learning"],
        ["updated_at[gte]", since],
        ["page_size", "250"],
    ]
    assert resolved in reads
    assert len(reads) == 3
    assert f"resolved in the last {words}" in rendered.text


def _follow_ups_of(sandbox: SandboxControl, incident_id: str) -> list[dict[str, Any]]:
    with sandbox.api() as api:
        body = api.get("/v3/follow_ups", params={"incident_id": incident_id}).json()
    found: list[dict[str, Any]] = body["follow_ups"]
    return found


def test_a_follow_ups_api_that_refuses_still_sends_the_digest(
    tmp_path: Path, sandbox: SandboxControl
) -> None:
    """A 403 on /v3/follow_ups: the digest renders with a line saying so, on-call intact."""
    config = write_config(tmp_path, sandbox.base_url, 2525)
    runtime, digests = open_digests(config, Clock(sandbox.now()))
    sandbox.set_faults(paths=["/v3/follow_ups"], next=[{"kind": "forbidden"}])
    try:
        rendered = digests.preview("daily")
    finally:
        runtime.close()
    for part in (rendered.text, rendered.html):
        assert "Follow-ups could not be read (incident.io answered HTTP 403)." in part
        assert "Platform primary" in part
        assert "Nothing outstanding" not in part
