"""Digest content: the pure function from incidents, catalog and ledger events to DigestData."""

from __future__ import annotations

from datetime import timedelta

import pytest

from automations.digest.content import (
    DigestData,
    build_digest,
    fair_shares,
    limit_rows,
    one_line,
    safe_link,
)
from automations.incidentio import Incident
from automations.ledger import Event, EventState
from tests.digest_support import make_event, make_incident
from tests.factories import CATALOG, NOW

DAY = timedelta(days=1)
SECTIONS = ("figures", "live", "opened", "resolved", "automations")


def digest(
    incidents: list[Incident],
    events: list[Event] | None = None,
    *,
    include_private: bool = False,
    include_test: bool = False,
) -> DigestData:
    return build_digest(
        name="daily",
        timezone="Europe/London",
        incidents=incidents,
        catalog=CATALOG,
        events=events or [],
        now=NOW,
        window_start=NOW - DAY,
        window_end=NOW,
        sections=SECTIONS,
        include_private=include_private,
        include_test=include_test,
    )


def test_live_grouped_by_severity_most_severe_first_then_oldest() -> None:
    """Critical before Major before Minor before none; the longest-running first in each."""
    minor_old = make_incident("minor old", age=timedelta(days=3), severity="Minor")
    minor_new = make_incident("minor new", age=timedelta(hours=1), severity="Minor")
    critical = make_incident("critical", age=timedelta(minutes=5), severity="Critical")
    unrated = make_incident("unrated", age=timedelta(hours=2), severity=None)
    major = make_incident("major", age=timedelta(hours=7), severity="Major", lead=False)
    data = digest([minor_new, unrated, critical, minor_old, major])
    assert [(g.severity, g.tone) for g in data.live] == [
        ("Critical", "critical"),
        ("Major", "major"),
        ("Minor", "minor"),
        ("No severity", "none"),
    ]
    assert [r.name for r in data.live_rows] == [
        "critical",
        "major",
        "minor old",
        "minor new",
        "unrated",
    ]
    assert data.worst is not None
    assert data.worst.name == "critical"
    major_row = data.live[1].rows[0]
    assert major_row.age == timedelta(hours=7)
    assert major_row.lead is None
    assert data.live[0].rows[0].lead == "Ada"
    assert major_row.link == f"https://app.incident.io/acme/incidents/{major.reference[4:]}"
    assert data.incidents_url == "https://app.incident.io/acme/incidents"
    figures = data.figures
    assert figures.live == 5
    assert figures.live_without_lead == 1
    assert figures.longest_live == timedelta(days=3)
    assert figures.live_by_severity == (
        ("Critical", "critical", 1),
        ("Major", "major", 1),
        ("Minor", "minor", 2),
        ("No severity", "none", 1),
    )


def test_opened_and_resolved_in_the_window_with_durations() -> None:
    """Opened and resolved lists hold only the window; median time to resolve over resolved."""
    opened_live = make_incident("opened, live", age=timedelta(hours=3))
    too_old = make_incident("opened 2 days ago", age=2 * DAY)
    fast = make_incident(
        "fast fix", age=timedelta(hours=5), status="Documenting", resolved_after=timedelta(hours=1)
    )
    slow = make_incident(
        "slow fix", age=3 * DAY, status="Closed", resolved_after=3 * DAY - timedelta(hours=2)
    )
    medium = make_incident(
        "medium fix", age=timedelta(hours=20), status="Closed", resolved_after=timedelta(hours=4)
    )
    before = make_incident(
        "resolved before", age=5 * DAY, status="Closed", resolved_after=timedelta(hours=1)
    )
    data = digest([opened_live, too_old, fast, slow, medium, before])
    assert [r.name for r in data.opened] == ["opened, live", "fast fix", "medium fix"]
    assert [r.name for r in data.resolved] == ["slow fix", "fast fix", "medium fix"]
    assert [r.duration for r in data.resolved] == [
        3 * DAY - timedelta(hours=2),
        timedelta(hours=1),
        timedelta(hours=4),
    ]
    assert data.figures.opened == 3
    assert data.figures.resolved == 3
    assert data.figures.median_time_to_resolve == timedelta(hours=4)


@pytest.mark.parametrize("flag", ["include_private", "include_test"])
def test_private_and_test_incidents_only_when_asked(flag: str) -> None:
    """Off: not in any list, figure or action (not even counted). On: shown and flagged."""
    public = make_incident("public one", age=timedelta(hours=1), severity="Critical")
    hidden = (
        make_incident("secret one", age=timedelta(hours=2), private=True)
        if flag == "include_private"
        else make_incident("drill one", age=timedelta(hours=2), mode="test")
    )
    tutorial = make_incident("tutorial", age=timedelta(hours=1), mode="tutorial")
    action = make_event(hidden, at=NOW - timedelta(hours=1), body={"severity_id": "SEV2"})
    default = digest([public, hidden, tutorial], [action])
    assert [r.name for r in default.live_rows] == ["public one"]
    assert [r.name for r in default.opened] == ["public one"]
    assert default.actions == ()
    assert default.figures.live == 1
    assert default.figures.live_by_severity == (("Critical", "critical", 1),)

    shown = digest([public, hidden, tutorial], [action], **{flag: True})
    names = {r.name for r in shown.live_rows}
    assert hidden.name in names
    assert [a.reference for a in shown.actions] == [hidden.reference]
    assert shown.figures.live == (3 if flag == "include_test" else 2)


def test_actions_come_from_applied_events_in_the_window() -> None:
    """Applied and reconciled edits in the window, newest first, described by their edit body."""
    one = make_incident("one", age=timedelta(hours=5))
    two = make_incident("two", age=timedelta(hours=5))
    gone = make_incident("not returned by the API", age=timedelta(hours=5))
    events = [
        make_event(one, at=NOW - timedelta(hours=2), body={"severity_id": "SEV2"}),
        make_event(
            two,
            at=NOW - timedelta(hours=1),
            body={"incident_status_id": "ST-CLOSED"},
            rule="close-finished",
            state=EventState.RECONCILED,
        ),
        make_event(
            one,
            at=NOW - timedelta(minutes=5),
            body={
                "custom_field_entries": [
                    {"custom_field_id": "CF-PHASE", "values": [{"value_option_id": "PH-ACTIVE"}]}
                ]
            },
            rule="phase",
        ),
        make_event(one, at=NOW - 2 * DAY, body={"severity_id": "SEV3"}),  # before the window
        make_event(two, at=NOW - timedelta(hours=3), body={}, state=EventState.FAILED),
        make_event(gone, at=NOW - timedelta(hours=1), body={"severity_id": "SEV3"}),
    ]
    data = digest([one, two], events)
    assert [(a.reference, a.rule, a.what) for a in data.actions] == [
        (one.reference, "phase", "Phase set to Active"),
        (two.reference, "close-finished", "Status set to Closed"),
        (one.reference, "escalate-stuck-minor", "Severity set to Major"),
    ]
    assert data.figures.actions == 3


def test_one_line_folds_control_characters_and_cuts_long_text() -> None:
    """CR/LF, tabs, bidi overrides and NULs become spaces; 10,000 characters become 200."""
    assert one_line("a\r\nBcc: x@y.z\n\tb") == "a Bcc: x@y.z b"
    assert one_line("\u202eevil\u200b name\x00") == "evil name"
    assert one_line("Überprüfung 支付 🚨") == "Überprüfung 支付 🚨"
    long = one_line("A" * 10_000)
    assert len(long) == 200
    assert long.endswith("…")
    assert one_line(None) == ""


def test_safe_link_only_allows_http() -> None:
    """A permalink that is not http(s) never reaches an href."""
    assert safe_link("https://app.incident.io/acme/incidents/1") is not None
    assert safe_link("javascript:alert(1)") is None
    assert safe_link('https://x.io/"><script>') is None
    assert safe_link(None) is None


def test_fair_shares_keep_small_sections_whole() -> None:
    """Small sections are shown in full; the big ones split the rest evenly."""
    assert fair_shares([3, 500, 40, 500], 200) == [3, 79, 40, 78]
    assert fair_shares([10, 20], 200) == [10, 20]
    assert fair_shares([10, 20], 0) == [0, 0]


def test_limit_rows_counts_what_is_left_out() -> None:
    """Live is cut from the least severe end; each section says how many more there are."""
    incidents = [
        make_incident(f"minor {i}", age=timedelta(hours=30 + i), severity="Minor")
        for i in range(20)
    ] + [make_incident("critical", age=timedelta(hours=40), severity="Critical")]
    data = limit_rows(digest(incidents), 5)
    assert [r.name for r in data.live_rows] == [
        "critical",
        "minor 19",
        "minor 18",
        "minor 17",
        "minor 16",
    ]
    assert data.more == {"live": 16}
    assert data.live[1].total == 20  # the group header still tells the whole count
    assert data.figures.live == 21
