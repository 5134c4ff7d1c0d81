"""The digest's on-call section: who is on call per schedule and the next handover.

Pure builders first (clocks relative to a fixed ``NOW``), then the whole digest
through the sandbox: names and handovers in both parts, the ``schedules`` key,
an unknown schedule name, and a schedules API that refuses (on-call not enabled).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from automations.digest.oncall import build_oncall, person_name, schedule_row, select_schedules
from automations.digest.render import Renderer
from automations.errors import ConfigError
from automations.incidentio.models import User
from automations.incidentio.oncall import Schedule, ScheduleEntry
from tests.digest_support import Clock, open_digests, write_config
from tests.engine_harness import Harness
from tests.factories import NOW
from tests.openapi_conformance import Conformance
from tests.sandbox_server import SandboxControl

LONDON = ZoneInfo("Europe/London")


def user(n: int, *, name: str | None = None) -> dict[str, Any]:
    return {"id": f"U{n}", "name": f"Person {n}" if name is None else name, "email": f"p{n}@x.io"}


def shift(
    who: dict[str, Any], start: timedelta, end: timedelta, rotation: str = "R1"
) -> dict[str, Any]:
    return {
        "start_at": (NOW + start).isoformat(),
        "end_at": (NOW + end).isoformat(),
        "user": who,
        "rotation_id": rotation,
    }


def schedule(
    name: str,
    current: list[dict[str, Any]],
    next_: list[dict[str, Any]] | None = None,
    *,
    rotations: tuple[str, ...] = ("R1",),
    id: str | None = None,
) -> Schedule:
    body: dict[str, Any] = {
        "id": id or f"S-{name}",
        "name": name,
        "permalink": f"https://app.incident.io/acme/on-call/schedules/{id or name}",
        "config": {"rotations": [{"id": r, "name": f"Rotation {r}"} for r in rotations]},
        "current_shifts": current,
    }
    if next_ is not None:
        body["next_shifts"] = next_
    return Schedule.model_validate(body)


# --- pure -----------------------------------------------------------------------------------


def test_handover_is_the_earliest_end_of_the_current_shifts() -> None:
    """Two layers on call: the handover is the earlier end; whoever starts then takes over."""
    s = schedule(
        "Data",
        [
            shift(user(1), -timedelta(hours=5), timedelta(hours=7), "R1"),
            shift(user(2), -timedelta(days=2), timedelta(days=5), "R2"),
        ],
        [
            shift(user(3), timedelta(hours=7), timedelta(hours=19), "R1"),
            shift(user(2), -timedelta(days=2), timedelta(days=5), "R2"),
        ],
        rotations=("R1", "R2"),
    )
    row = schedule_row(s, NOW)
    assert [(p.name, p.rotation) for p in row.people] == [
        ("Person 2", "Rotation R2"),
        ("Person 1", "Rotation R1"),
    ]
    assert row.handover_at == NOW + timedelta(hours=7)
    assert row.handover_in == timedelta(hours=7)
    assert [p.name for p in row.next_people] == ["Person 3"]  # Person 2 hands nothing over


def test_one_rotation_shows_no_rotation_label() -> None:
    """A schedule with a single rotation names people without '(Rotation ...)'."""
    row = schedule_row(
        schedule("Ops", [shift(user(1), -timedelta(hours=1), timedelta(hours=2))]), NOW
    )
    assert [(p.name, p.rotation) for p in row.people] == [("Person 1", None)]


def test_nobody_on_call_shows_the_next_shift_start() -> None:
    """With nobody on call the handover is when the next shift starts, from next_shifts or the
    entries the fetch read ahead; with neither, no handover is known."""
    later = shift(user(4), timedelta(hours=3), timedelta(hours=9))
    listed = schedule_row(schedule("Quiet", [], [later]), NOW)
    assert listed.people == ()
    assert listed.handover_at == NOW + timedelta(hours=3)
    assert [p.name for p in listed.next_people] == ["Person 4"]
    bare = schedule("Quiet", [])
    entries = (ScheduleEntry.model_validate(later),)
    assert schedule_row(bare, NOW, entries).handover_at == NOW + timedelta(hours=3)
    unknown = schedule_row(bare, NOW)
    assert unknown.handover_at is None
    assert unknown.handover_in is None


def test_a_person_is_named_never_by_email_when_a_name_exists() -> None:
    """Name first; the email address only for someone without a name."""
    assert person_name(User.model_validate(user(1))) == "Person 1"
    assert person_name(User.model_validate(user(2, name=""))) == "p2@x.io"
    assert person_name(None) == "Unknown person"


def test_schedules_are_chosen_by_id_or_name_in_the_configured_order() -> None:
    """IDs, exact names and names in any case match; the configured order is kept; an
    unknown name is reported; empty means all, by name."""
    a, b, c = (schedule(n, [], id=f"S{i}") for i, n in enumerate(("Zeta", "Alpha", "Mid")))
    chosen, missing = select_schedules([a, b, c], ["S2", "zeta", "Nope", "Alpha"])
    assert [s.name for s in chosen] == ["Mid", "Zeta", "Alpha"]
    assert missing == ["Nope"]
    everything, none = select_schedules([a, b, c], [])
    assert [s.name for s in everything] == ["Alpha", "Mid", "Zeta"]
    assert none == []


def test_nobody_on_call_is_said_in_both_parts() -> None:
    """A schedule with nobody on call says so in the HTML and the text."""
    from tests.test_digest_render import sample

    data = sample()
    quiet = build_oncall([schedule("Weekend cover", [])], NOW)
    view = replace(data, oncall=quiet, sections=("oncall",))
    rendered = Renderer("digest", LONDON).render(view, "x", 200)
    for part in (rendered.text, rendered.html):
        assert "Weekend cover" in part
        assert "nobody on call" in part
        assert "No handover scheduled" in part


# --- through the sandbox ---------------------------------------------------------------------


def _expected(sandbox: SandboxControl) -> list[dict[str, Any]]:
    """The sandbox's schedules as the API lists them (the truth the digest must show)."""
    with sandbox.api() as api:
        body: list[dict[str, Any]] = api.get("/v2/schedules", params={"page_size": 25}).json()[
            "schedules"
        ]
    return body


def _preview(tmp_path: Path, sandbox: SandboxControl, extra: str = "") -> tuple[str, str]:
    config = write_config(tmp_path, sandbox.base_url, 2525, extra=extra)
    runtime, digests = open_digests(config, Clock(sandbox.now()))
    try:
        rendered = digests.preview("daily")
    finally:
        runtime.close()
    return rendered.text, rendered.html


def test_digest_shows_who_is_on_call_and_the_next_handover(
    tmp_path: Path, sandbox: SandboxControl
) -> None:
    """Every schedule's on-call people (by name) and its next handover time in the digest's
    timezone, in both the text and the HTML; no email address of theirs."""
    text, html = _preview(tmp_path, sandbox)
    when = Renderer("digest", LONDON).when
    schedules = _expected(sandbox)
    assert len(schedules) == 3
    for s in schedules:
        assert s["current_shifts"], "the seed puts someone on call on every schedule"
        handover = min(datetime.fromisoformat(x["end_at"]) for x in s["current_shifts"])
        for part in (text, html):
            assert s["name"] in part
            assert f"Next handover {when(handover)}" in part
            for x in s["current_shifts"]:
                assert x["user"]["name"] in part
                assert x["user"]["email"] not in part
    assert text.index("ON CALL") < text.index("LIVE INCIDENTS")
    assert html.index(">On call<") < html.index(">Live incidents<")


def test_the_schedules_key_picks_and_orders_schedules(
    tmp_path: Path, sandbox: SandboxControl, openapi: Conformance
) -> None:
    """schedules = [name, ID]: only those, in that order; the others are not shown. The
    schedule requests are ones the API documents, with next_shifts (page_size 25)."""
    by_name = {s["name"]: s["id"] for s in _expected(sandbox)}
    extra = f'schedules = ["Payments on-call", "{by_name["Platform primary"]}"]\n'
    sandbox.clear_requests()
    text, html = _preview(tmp_path, sandbox, extra)
    reads = [r for r in sandbox.requests() if r["path"].startswith("/v2/schedule")]
    assert [(r["path"], r["query_pairs"]) for r in reads] == [
        ("/v2/schedules", [["page_size", "25"]]),  # set-up: the names checked
        ("/v2/schedules", [["page_size", "25"]]),  # the digest
    ]
    for entry in reads:
        openapi.validate_request(entry["method"], entry["path"], entry["query_pairs"])
    for part in (text, html):
        assert part.index("Payments on-call") < part.index("Platform primary")
        assert "Data platform" not in part


def test_an_unknown_schedule_name_is_a_config_error(
    tmp_path: Path, sandbox: SandboxControl
) -> None:
    """An unknown name fails at set-up, naming the key path and the known schedules."""
    config = write_config(
        tmp_path, sandbox.base_url, 2525, extra='schedules = ["Payments on-call", "Primary"]\n'
    )
    with pytest.raises(ConfigError) as info:
        open_digests(config, Clock(sandbox.now()))
    message = str(info.value)
    assert str(config) in message
    assert "digests[0].schedules[1]: 'Primary' is not a known schedule" in message
    assert "Data platform, Payments on-call, Platform primary" in message
    assert "schedules[0]" not in message


@pytest.mark.parametrize("command", [("validate",), ("digest", "preview", "daily")])
def test_the_cli_refuses_an_unknown_schedule_with_exit_78(
    harness: Harness, command: tuple[str, ...]
) -> None:
    """`validate` and `digest preview` exit 78 naming the key path and the known schedules."""
    harness.write(
        '[smtp]\nhost = "127.0.0.1"\nsecurity = "none"\nsender = "bot@example.com"\n\n'
        '[[digests]]\nname = "daily"\ncron = "0 8 * * *"\ntimezone = "Europe/London"\n'
        'to = ["oncall@example.com"]\nschedules = ["Data platform", "Nope"]\n'
    )
    result = harness.cli(*command)
    assert result.returncode == 78, result.stderr
    assert (
        "digests[0].schedules[1]: 'Nope' is not a known schedule; valid: Data platform, "
        "Payments on-call, Platform primary" in result.stderr
    )


@pytest.mark.parametrize(
    ("fault", "status"), [({"kind": "forbidden"}, 403), ({"kind": "status", "status": 404}, 404)]
)
def test_a_schedules_api_that_refuses_still_sends_the_digest(
    tmp_path: Path,
    sandbox: SandboxControl,
    caplog: pytest.LogCaptureFixture,
    fault: dict[str, Any],
    status: int,
) -> None:
    """On-call not enabled (403 or 404): the digest renders with a line saying on-call could
    not be read, every other section intact; the warning is logged once for two digests."""
    config = write_config(tmp_path, sandbox.base_url, 2525)
    runtime, digests = open_digests(config, Clock(sandbox.now()))
    sandbox.set_faults(paths=["/v2/schedules"], next=[fault, fault])
    try:
        with caplog.at_level(logging.DEBUG, logger="automations.digest"):
            first = digests.preview("daily")
            second = digests.preview("daily")
    finally:
        runtime.close()
    line = f"On-call could not be read (incident.io answered HTTP {status})."
    for part in (first.text, first.html, second.text):
        assert line in part
        assert "Platform primary" not in part
    assert "LIVE INCIDENTS" in first.text
    assert "FOLLOW-UPS" in first.text
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "on-call" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert "could not be read" in warnings[0].getMessage()
