"""Schedules and schedule entries end to end: the client against the sandbox over HTTP.

Who is on call depends on the sandbox clock only; every test reads or moves
that clock relative to its own now, never the host's date.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from automations.errors import APIRejected, PaginationLoop
from automations.incidentio import IncidentIOClient
from automations.incidentio.oncall import Schedule, ScheduleEntry
from tests.hostile_proxy import Answer, Exchange, HostileProxy
from tests.openapi_conformance import Conformance
from tests.sandbox_server import SandboxControl
from tests.secret_values import SANDBOX_KEY
from tests.test_client_against_sandbox import (
    SECRET,
    RecordingTransport,
    api_log,
    make_client,
    use_secret_key,
    watch_logs_for_key,
)
from tests.test_sandbox_required_keys import Obj, problems_in

ENTRIES = "/v2/schedule_entries"
QUIET = timedelta(minutes=10)  # no handover this close to a test's now


@pytest.fixture
def org(sandbox: SandboxControl) -> SandboxControl:
    return use_secret_key(sandbox)


@pytest.fixture
def client(org: SandboxControl) -> Iterator[IncidentIOClient]:
    with make_client(org.base_url) as c:
        yield c


@pytest.fixture
def api(org: SandboxControl) -> Iterator[httpx.Client]:
    with org.api(SECRET) as c:
        yield c


@pytest.fixture(autouse=True)
def no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log line of every test here, DEBUG included, lacks the key."""
    yield from watch_logs_for_key(caplog)


def by_name(client: IncidentIOClient) -> dict[str, Schedule]:
    return {s.name: s for s in client.iter_schedules()}


def steady(org: SandboxControl, client: IncidentIOClient) -> datetime:
    """Move the sandbox clock, if need be, so no shift changes within QUIET of its now."""
    for _ in range(5):
        now = org.now()
        ends = [e.end_at for s in client.iter_schedules() for e in s.current_shifts]
        change = min(ends)
        if change - now > QUIET:
            return now
        assert change > now, f"a current shift ended at {change}, before now ({now})"
        org.advance_clock((change - now + timedelta(minutes=1)).total_seconds())
    raise AssertionError("shifts keep changing within minutes of each other")


def shift(entry: ScheduleEntry) -> tuple[Any, ...]:
    """What a shift is, for comparing the two routes that report it."""
    user = entry.user.id if entry.user else None
    return (entry.start_at, entry.end_at, user, entry.rotation_id, entry.fingerprint)


def at(entries: list[ScheduleEntry], when: datetime) -> set[tuple[Any, ...]]:
    return {shift(e) for e in entries if e.start_at <= when < e.end_at}


def user_at(raw: list[dict[str, Any]], when: datetime) -> str:
    """The user of the raw entry running at ``when``."""
    return next(
        str(e["user"]["id"])
        for e in raw
        if datetime.fromisoformat(e["start_at"]) <= when < datetime.fromisoformat(e["end_at"])
    )


def entry_pages(
    api: httpx.Client, schedule_id: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Every raw page of schedule_entries, following ``after`` by hand."""
    pages: list[dict[str, Any]] = []
    window_start = start.isoformat()
    while True:
        params = {
            "schedule_id": schedule_id,
            "entry_window_start": window_start,
            "entry_window_end": end.isoformat(),
        }
        response = api.get(ENTRIES, params=params)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        meta = pages[-1].get("pagination_meta")
        if meta is None:
            return pages
        window_start = meta["after"]


# --- shapes -------------------------------------------------------------------------


def test_schedules_list_and_show_conform(
    org: SandboxControl, client: IncidentIOClient, openapi: Conformance
) -> None:
    """Three seeded schedules; list and show validate, carry section 0's keys, agree."""
    steady(org, client)
    transport = RecordingTransport()
    with make_client(org.base_url, transport=transport) as recorded:
        listed = list(recorded.iter_schedules())
        shown = [recorded.get_schedule(s.id) for s in listed]
    assert [s.name for s in listed] == ["Platform primary", "Payments on-call", "Data platform"]
    assert shown == listed
    for request, response in transport.exchanges:
        path = request.url.path
        openapi.validate_request("GET", path, request.url.params.multi_items())
        body = response.json()
        openapi.validate_response("GET", path, response.status_code, body)
        row = "SchedulesListResultV2" if "schedules" in body else "SchedulesShowResultV2"
        assert problems_in(body, Obj(row)) == []  # the shifts inside too
        for raw in body["schedules"] if "schedules" in body else [body["schedule"]]:
            assert raw["permalink"].endswith(f"/on-call/schedules/{raw['id']}")
    for schedule in listed:
        assert schedule.config is not None
        rotations = len(schedule.config.rotations)
        assert len(schedule.current_shifts) == rotations
        assert len(schedule.next_shifts) == rotations
        assert all(e.user is not None for e in schedule.current_shifts)
    data = next(s for s in listed if s.name == "Data platform")
    assert len(data.on_call) == 2


def test_rotations_are_active_people_with_on_call_seats_and_schedules_have_teams(
    client: IncidentIOClient,
) -> None:
    """Everyone on a rotation is active with a full on-call seat; each schedule has its team."""
    users = {u.id: u for u in client.iter_users(include_inactive=True)}
    schedules = list(client.iter_schedules())
    for schedule in schedules:
        assert schedule.config is not None
        for rotation in schedule.config.rotations:
            for member in rotation.users:
                assert users[member.id].is_active is True
                seats = users[member.id].seats
                assert seats is not None
                assert seats.on_call == "full_access"
    teams = [schedule.team_ids for schedule in schedules]
    assert all(len(ids) == 1 for ids in teams)
    assert len({ids[0] for ids in teams}) == len(schedules)
    paths = {p.name: p for p in client.iter_escalation_paths()}
    by_name = {s.name: s for s in schedules}
    assert paths["Platform primary"].team_ids == by_name["Platform primary"].team_ids


def test_next_shifts_only_on_small_pages(api: httpx.Client) -> None:
    """page_size <= 25 sends next_shifts; larger pages (up to 10000) leave it out."""
    small = api.get("/v2/schedules", params={"page_size": "25"}).json()["schedules"]
    large = api.get("/v2/schedules", params={"page_size": "26"}).json()["schedules"]
    largest = api.get("/v2/schedules", params={"page_size": "10000"})
    assert all("next_shifts" in s for s in small)
    assert not any("next_shifts" in s for s in large)
    assert largest.status_code == 200
    too_large = api.get("/v2/schedules", params={"page_size": "10001"})
    assert too_large.status_code == 422
    assert too_large.json()["errors"][0]["source"]["field"] == "page_size"


def test_schedules_page_by_after(client: IncidentIOClient, org: SandboxControl) -> None:
    """page_size=1 takes three requests, each after the last ID; an unknown cursor is 422."""
    org.clear_requests()
    names = [s.name for s in client.iter_schedules(page_size=1)]
    assert names == ["Platform primary", "Payments on-call", "Data platform"]
    log = api_log(org, "/v2/schedules")
    assert len(log) == 3
    afters = [dict(map(tuple, r["query_pairs"])).get("after") for r in log]
    assert afters[0] is None
    assert None not in afters[1:]
    with org.api(SECRET) as api:
        response = api.get("/v2/schedules", params={"after": "01NOPE"})
    assert response.status_code == 422
    with pytest.raises(ValueError, match="maximum of 10000"):
        client.iter_schedules(page_size=10_001)


def test_unknown_schedule_is_404(client: IncidentIOClient) -> None:
    """get_schedule of an ID that does not exist raises the API's 404."""
    with pytest.raises(APIRejected) as missing:
        client.get_schedule("01NOPE")
    assert missing.value.status == 404


# --- who is on call, and the clock ---------------------------------------------------


def test_current_shifts_agree_with_final_entries(
    org: SandboxControl, client: IncidentIOClient
) -> None:
    """For every schedule, current_shifts are exactly the final entries running now."""
    now = steady(org, client)
    for schedule in client.iter_schedules():
        entries = list(client.iter_schedule_entries(schedule.id, now, now + timedelta(hours=1)))
        assert at(entries, now) == {shift(e) for e in schedule.current_shifts}
        assert at(entries, now)


def test_moving_the_clock_past_a_handover_moves_who_is_on_call(
    org: SandboxControl, client: IncidentIOClient
) -> None:
    """Past the weekly handover the next person is on call, in both routes, as next_shifts said."""
    now = steady(org, client)
    before = by_name(client)["Platform primary"]
    (current,) = before.current_shifts
    (upcoming,) = before.next_shifts
    assert upcoming.start_at == current.end_at
    moved = org.advance_clock((current.end_at - now + timedelta(minutes=1)).total_seconds())

    after = by_name(client)["Platform primary"]
    (now_on,) = after.current_shifts
    assert now_on.user is not None
    assert current.user is not None
    assert now_on.user.id != current.user.id
    assert shift(now_on) == shift(upcoming)
    entries = list(client.iter_schedule_entries(after.id, moved, moved + timedelta(minutes=5)))
    assert at(entries, moved) == {shift(now_on)}
    old = list(client.iter_schedule_entries(after.id, now, now + timedelta(minutes=5)))
    assert at(old, now) == {shift(current)}


def test_the_override_replaces_the_rotation_in_final_and_current_shifts(
    org: SandboxControl, client: IncidentIOClient, api: httpx.Client
) -> None:
    """Payments' seeded override: listed in overrides, laid over final, on call when it runs."""
    now = org.now()
    payments = by_name(client)["Payments on-call"]
    params = {
        "schedule_id": payments.id,
        "entry_window_start": now.isoformat(),
        "entry_window_end": (now + timedelta(days=3)).isoformat(),
    }
    body = api.get(ENTRIES, params=params).json()["schedule_entries"]
    (override,) = body["overrides"]
    assert override["entry_id"]
    start = datetime.fromisoformat(override["start_at"])
    end = datetime.fromisoformat(override["end_at"])
    assert override in body["final"]
    assert all(e.get("entry_id") is None for e in body["scheduled"])
    assert user_at(body["scheduled"], start) != override["user"]["id"]
    # the rotation's users keep the parts of their shifts that the override leaves
    before = next(e for e in body["final"] if e["end_at"] == override["start_at"])
    after = next(e for e in body["final"] if e["start_at"] == override["end_at"])
    assert before["user"]["id"] == user_at(body["scheduled"], start - timedelta(seconds=1))
    assert after["user"]["id"] == user_at(body["scheduled"], end)
    assert "entry_id" not in before
    assert "entry_id" not in after

    org.advance_clock((start - now + timedelta(minutes=1)).total_seconds())
    (on_call,) = client.get_schedule(payments.id).current_shifts
    assert on_call.entry_id == override["entry_id"]
    assert on_call.user is not None
    assert on_call.user.id == override["user"]["id"]
    assert on_call.end_at == end


def test_weekly_handovers_keep_local_time_across_daylight_saving(
    org: SandboxControl, client: IncidentIOClient
) -> None:
    """Over 400 days (two DST changes) every Platform shift starts Monday 09:00 London."""
    now = org.now()
    platform = by_name(client)["Platform primary"]
    entries = list(client.iter_schedule_entries(platform.id, now, now + timedelta(days=400)))
    assert len(entries) >= 57
    london = ZoneInfo("Europe/London")
    for entry in entries:
        local = entry.start_at.astimezone(london)
        assert (local.weekday(), local.hour, local.minute) == (0, 9, 0)
    offsets = {e.start_at.astimezone(london).utcoffset() for e in entries}
    assert len(offsets) == 2  # both GMT and BST shifts were seen
    for earlier, later in itertools.pairwise(entries):
        assert earlier.end_at == later.start_at


# --- the entries' cursor --------------------------------------------------------------


def test_schedule_entries_follow_the_time_cursor(
    org: SandboxControl, client: IncidentIOClient, api: httpx.Client, openapi: Conformance
) -> None:
    """Pages carry after/after_url until the last; the client resends with start=<after>."""
    now = org.now()
    payments = by_name(client)["Payments on-call"]
    end = now + timedelta(days=300)
    pages = entry_pages(api, payments.id, now, end)
    assert len(pages) >= 3
    for page in pages:
        openapi.validate_response("GET", ENTRIES, 200, page)
        assert problems_in(page, Obj("SchedulesListScheduleEntriesResultV2")) == []
    for page, following in itertools.pairwise(pages):
        meta = page["pagination_meta"]
        assert following["schedule_entries"]["final"][0]["start_at"] == meta["after"]
        assert f"entry_window_start={meta['after']}".replace(":", "%3A") in meta["after_url"]
    assert "pagination_meta" not in pages[-1]

    org.clear_requests()
    entries = list(client.iter_schedule_entries(payments.id, now, end))
    log = api_log(org, ENTRIES)
    assert len(log) == len(pages)
    starts = [dict(map(tuple, r["query_pairs"]))["entry_window_start"] for r in log]
    assert starts[1:] == [p["pagination_meta"]["after"] for p in pages[:-1]]
    raw = [e for p in pages for e in p["schedule_entries"]["final"]]
    assert [e.fingerprint for e in entries] == [e["fingerprint"] for e in raw]
    for earlier, later in itertools.pairwise(entries):
        assert earlier.end_at == later.start_at  # one rotation: no gap, no overlap
    assert entries[0].start_at <= now < entries[0].end_at
    assert entries[-1].start_at < end <= entries[-1].end_at


def test_a_shift_spanning_a_page_boundary_is_yielded_once(
    org: SandboxControl, client: IncidentIOClient, api: httpx.Client
) -> None:
    """Data platform's weekly shadow shift crosses pages: on both raw pages, yielded once."""
    now = org.now()
    data = by_name(client)["Data platform"]
    end = now + timedelta(days=80)
    pages = entry_pages(api, data.id, now, end)
    finals = [{e["fingerprint"] for e in p["schedule_entries"]["final"]} for p in pages]
    repeated = set.intersection(finals[0], finals[1])
    assert repeated
    entries = list(client.iter_schedule_entries(data.id, now, end))
    fingerprints = [e.fingerprint for e in entries]
    assert len(fingerprints) == len(set(fingerprints)) == len(set.union(*finals))
    assert entries == sorted(entries, key=lambda e: e.start_at)


# --- bad queries ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({}, 422, "schedule_id"),
        ({"schedule_id": "01NOPE"}, 404, None),
        ({"schedule_id": "{id}", "entry_window_start": "yesterday"}, 422, "entry_window_start"),
        (
            {
                "schedule_id": "{id}",
                "entry_window_start": "2030-01-02T00:00:00Z",
                "entry_window_end": "2030-01-01T00:00:00Z",
            },
            422,
            "entry_window_end",
        ),
        ({"schedule_id": "{id}", "page_size": "5"}, 422, "page_size"),
    ],
)
def test_bad_entry_queries_are_envelopes(
    client: IncidentIOClient,
    api: httpx.Client,
    openapi: Conformance,
    params: dict[str, str],
    status: int,
    field: str | None,
) -> None:
    """A missing or unknown schedule, a bad time, a window ending first: errors naming the key."""
    schedule_id = next(iter(client.iter_schedules())).id
    params = {k: schedule_id if v == "{id}" else v for k, v in params.items()}
    response = api.get(ENTRIES, params=params)
    assert response.status_code == status
    openapi.validate_response("GET", ENTRIES, status, response.json())
    if field is not None:
        assert response.json()["errors"][0]["source"] == {"field": field, "pointer": f"/{field}"}


def test_the_client_checks_the_window_before_asking(
    org: SandboxControl, client: IncidentIOClient
) -> None:
    """A naive time or an empty window is a ValueError, and no request is sent."""
    now = org.now()
    org.clear_requests()
    with pytest.raises(ValueError, match="timezone-aware"):
        client.iter_schedule_entries("01X", now.replace(tzinfo=None), now)
    with pytest.raises(ValueError, match="must be after"):
        client.iter_schedule_entries("01X", now, now)
    assert api_log(org, ENTRIES) == []


def test_entries_default_to_a_week_from_the_sandbox_now(
    org: SandboxControl, api: httpx.Client
) -> None:
    """Without a window the entries start at the sandbox's now and run one week."""
    schedule_id = api.get("/v2/schedules").json()["schedules"][0]["id"]
    now = org.now()
    body = api.get(ENTRIES, params={"schedule_id": schedule_id}).json()
    final = body["schedule_entries"]["final"]
    assert datetime.fromisoformat(final[0]["start_at"]) <= now
    last = datetime.fromisoformat(final[-1]["end_at"])
    assert now + timedelta(days=7) <= last <= now + timedelta(days=14, minutes=1)
    assert json.dumps(body).count("null") == 0


def test_a_cursor_handed_out_twice_stops_the_listing(
    sandbox: SandboxControl, hostile: HostileProxy
) -> None:
    """A server whose entries cursor does not move ends in PaginationLoop after two pages."""

    now = sandbox.now()
    stuck_at = (now + timedelta(hours=1)).isoformat()

    def stuck(exchange: Exchange, answer: Answer) -> Answer:
        if exchange.path != ENTRIES:
            return answer
        body = answer.json_body()
        body["pagination_meta"] = {"after": stuck_at, "after_url": "stuck"}
        return answer.with_json(body)

    hostile.rewrite = stuck
    with IncidentIOClient(base_url=hostile.url, api_key=SANDBOX_KEY) as client:
        schedule = next(iter(client.iter_schedules()))
        entries = client.iter_schedule_entries(schedule.id, now, now + timedelta(days=1))
        with pytest.raises(PaginationLoop, match="twice"):
            list(entries)
    assert len(hostile.requests_to("GET", ENTRIES)) == 2
