"""since = "live" / "severity": time counts from entering live, or from the last severity change."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from automations.daemon import run_once
from automations.durations import human_moment
from automations.incidentio import Incident, IncidentTimestamp, IncidentUpdate
from automations.ledger import Ledger
from automations.rules.base import EvaluationContext
from automations.rules.escalate import EscalateSeverity, EscalateSeverityOptions
from automations.rules.registry import RuleRegistry
from tests.engine_harness import Harness
from tests.factories import CATALOG, NOW, incident

H = timedelta(hours=1)
M = timedelta(minutes=1)
S = timedelta(seconds=1)
ACCEPTED = IncidentTimestamp(id="TS-ACCEPTED", name="Accepted at", rank=3)
LADDER = [{"after": "2h", "to": "Major"}, {"after": "6h", "to": "Critical"}]


def rule(since: str, **overrides: Any) -> EscalateSeverity:
    options: dict[str, Any] = {
        "type": "escalate_severity",
        "name": "esc",
        "every": "1m",
        "where": {"status_category": ["live"], "severity": ["Minor", "Major"]},
        "since": since,
        "steps": LADDER,
    }
    options.update(overrides)
    return EscalateSeverity(EscalateSeverityOptions.model_validate(options), CATALOG)


def with_history(
    base: Incident, *, accepted: timedelta | None = None, updated: timedelta | None = None
) -> Incident:
    """The incident with an 'Accepted at' value and an updated_at, each that long before NOW."""
    data = base.model_dump(mode="json")
    if accepted is not None:
        data["incident_timestamp_values"].append(
            {
                "incident_timestamp": ACCEPTED.model_dump(mode="json"),
                "value": {"value": (NOW - accepted).isoformat()},
            }
        )
    if updated is not None:
        data["updated_at"] = (NOW - updated).isoformat()
    return Incident.model_validate(data)


def update(
    of: Incident, ago: timedelta, status: str = "Investigating", severity: str | None = None
) -> IncidentUpdate:
    """An incident update as GET /v2/incident_updates returns it, ``ago`` before NOW."""
    return IncidentUpdate(
        id=f"UPD-{of.id}-{int(ago.total_seconds())}",
        incident_id=of.id,
        new_incident_status=CATALOG.status(status),
        new_severity=CATALOG.severity(severity) if severity else None,
        created_at=NOW - ago,
    )


def plan(
    since: str, item: Incident, updates: Sequence[IncidentUpdate], **overrides: Any
) -> list[tuple[str, str]]:
    """(target severity, reason) of each action the rule plans for ``item`` at NOW."""
    actions = rule(since, **overrides).evaluate(
        [item], EvaluationContext(NOW, CATALOG, None, {item.id: updates})
    )
    return [(str(a.details["to"]), a.reason) for a in actions]


# -- since = "live" ---------------------------------------------------------------------------


def test_three_hours_in_triage_do_not_count_as_live() -> None:
    """Created 7h ago, accepted out of triage 2h05m ago: live for 2h05m, so Major, not Critical."""
    sat = with_history(incident(age=7 * H, severity="Minor"), accepted=2 * H + 5 * M)
    updates = [update(sat, 2 * H + 5 * M, "Investigating", "Minor")]

    assert plan("live", sat, updates) == [
        ("Major", "live for 2h 5m (since 09:55 UTC); step 1 (after 2h): severity Minor -> Major")
    ]
    assert plan("created", sat, updates)[0][0] == "Critical"


def test_changes_within_live_do_not_restart_the_clock() -> None:
    """Declared live 7h ago, then Fixing and an escalation to Major: still live for 7h."""
    declared = with_history(incident(age=7 * H, severity="Major"), accepted=7 * H)
    updates = [update(declared, 3 * H, "Fixing"), update(declared, 5 * H, "Fixing", "Major")]

    assert plan("live", declared, updates) == [
        (
            "Critical",
            "live for 7h (since creation at 05:00 UTC); step 2 (after 6h): severity Major -> "
            "Critical",
        )
    ]


def test_the_clock_restarts_when_it_comes_back_to_live() -> None:
    """Live, paused for a while, live again 1h ago: live for 1h, nothing due."""
    back = with_history(incident(age=9 * H), accepted=9 * H)
    updates = [
        update(back, 8 * H, "Fixing"),
        update(back, 4 * H, "Triage"),  # any non-live status
        update(back, 1 * H, "Investigating"),
    ]
    assert plan("live", back, updates) == []
    assert plan("live", back, [*updates[:2], update(back, 2 * H + M, "Investigating")]) == [
        ("Major", "live for 2h 1m (since 09:59 UTC); step 1 (after 2h): severity Minor -> Major")
    ]


def test_without_an_update_into_live_the_clock_starts_at_creation() -> None:
    """No updates at all, or a first update already live without 'Accepted at': creation."""
    quiet = incident(age=3 * H)
    assert plan("live", quiet, []) == [
        (
            "Major",
            "live for 3h (since creation at 09:00 UTC); step 1 (after 2h): severity Minor -> Major",
        )
    ]
    assert plan("live", quiet, [update(quiet, 1 * H, "Fixing")])[0][0] == "Major"


def test_an_incident_not_live_now_is_not_live_for_any_time() -> None:
    """since = "live" leaves an incident that left live alone, even if the query includes it."""
    learning = incident(age=9 * H, status="Documenting")
    where = {"status_category": ["live", "learning"], "severity": ["Minor", "Major"]}
    assert plan("live", learning, [update(learning, 8 * H)], where=where) == []
    assert plan("created", learning, [], where=where)[0][0] == "Critical"


def test_a_status_change_the_updates_do_not_show_counts_from_the_last_change() -> None:
    """Live now, but the last update says Triage: it changed since, at the latest at updated_at."""
    moved = with_history(incident(age=9 * H), updated=2 * H + 30 * M)
    assert plan("live", moved, [update(moved, 8 * H, "Triage")]) == [
        ("Major", "live for 2h 30m (since 09:30 UTC); step 1 (after 2h): severity Minor -> Major")
    ]


# -- since = "severity" ---------------------------------------------------------------------------


def test_time_counts_from_the_last_severity_change() -> None:
    """Minor at 05:00, Major at 05:55: Major for 6h05m, so Critical; a repeat does not reset it."""
    major = incident(age=7 * H, severity="Major")
    updates = [
        update(major, 7 * H, "Investigating", "Minor"),
        update(major, 6 * H + 5 * M, "Investigating", "Major"),
        update(major, 1 * H, "Fixing", "Major"),  # a status change restating the severity
    ]
    assert plan("severity", major, updates) == [
        (
            "Critical",
            "Major for 6h 5m (since 05:55 UTC); step 2 (after 6h): severity Major -> Critical",
        )
    ]
    assert plan("severity", major, [*updates, update(major, 30 * M, "Fixing", "Minor")]) == []


def test_a_day_old_anchor_shows_its_date() -> None:
    """An anchor on another day gives the day and month with the time."""
    old = incident(age=40 * H, severity="Major")
    updates = [update(old, 30 * H, "Investigating", "Major")]
    assert plan("severity", old, updates)[0][1].startswith(
        "Major for 1d 6h (since 22 Nov 06:00 UTC)"
    )


def test_without_a_severity_change_the_clock_starts_at_creation() -> None:
    """No update carries a severity: the severity is the one it was created with."""
    minor = incident(age=3 * H)
    assert plan("severity", minor, [update(minor, 1 * H, "Fixing")]) == [
        (
            "Major",
            "Minor for 3h (since creation at 09:00 UTC); step 1 (after 2h): severity Minor -> "
            "Major",
        )
    ]


def test_a_severity_change_the_updates_do_not_show_counts_from_the_last_change() -> None:
    """Major now, last recorded Minor: it changed unrecorded, at the latest at updated_at."""
    raised = with_history(incident(age=9 * H, severity="Major"), updated=1 * H)
    assert plan("severity", raised, [update(raised, 8 * H, "Investigating", "Minor")]) == []


# -- which incidents need their updates ----------------------------------------------------------


def test_updates_are_asked_for_only_where_an_action_is_possible() -> None:
    """Too young since creation, already at the top, or since = created: no updates needed."""
    live = rule("live")
    young = incident(age=1 * H + 59 * M)
    due = incident(age=2 * H)
    top = incident(age=9 * H, severity="Critical")
    major_early = incident(age=3 * H, severity="Major")  # Major is as far as 3h could reach
    assert [live.needs_updates(i, NOW) for i in (young, due, top, major_early)] == [
        False,
        True,
        False,
        False,
    ]
    assert not rule("created").needs_updates(due, NOW)
    assert not rule("Impact started").needs_updates(due, NOW)


def test_judging_without_updates_never_differs_where_none_were_needed() -> None:
    """For every incident needs_updates declines, evaluating without updates gives the same."""
    live = rule("live")
    for age in (30 * M, 1 * H, 119 * M, 3 * H, 9 * H):
        for severity in ("Minor", "Major", "Critical"):
            item = incident(age=age, severity=severity)
            if live.needs_updates(item, NOW):
                continue
            recent = [update(item, min(age, 10 * M), "Investigating", severity)]
            with_updates = live.evaluate(
                [item], EvaluationContext(NOW, CATALOG, None, {item.id: recent})
            )
            assert with_updates == live.evaluate([item], EvaluationContext(NOW, CATALOG)), (
                age,
                severity,
            )


# -- against the sandbox -----------------------------------------------------------------------

LIVE_RULE = """
[[rules]]
name = "live-ladder"
type = "{type}"
every = "1m"
where = {{ status_category = ["live"], severity = ["Minor", "Major"] }}
since = "{since}"
steps = [ {{ after = "2h", to = "Major" }}, {{ after = "6h", to = "Critical" }} ]
"""


def updates_requests(harness: Harness) -> list[str]:
    """The incident IDs of each GET /v2/incident_updates the sandbox answered."""
    return [
        r["query"].split("incident_id=")[1].split("&")[0]
        for r in harness.sandbox.requests()
        if r["method"] == "GET" and r["path"] == "/v2/incident_updates"
    ]


def test_a_triaged_incident_escalates_by_its_time_live(harness: Harness) -> None:
    """Through the engine: updates fetched only for incidents that could be due, once each."""
    harness.write(LIVE_RULE.format(type="escalate_severity", since="live"))
    triaged = harness.add("Sat in triage", age=5 * H, status="Triage")
    harness.sandbox.update_incident(triaged["id"], status="Investigating")  # accepted now
    harness.sandbox.advance_clock((2 * H + 10 * M).total_seconds())
    young = harness.add("Young", age=1 * H)
    top = harness.add("Already critical", age=9 * H, severity="Critical")
    harness.sandbox.clear_requests()

    (report,) = harness.cycle()

    assert report.ok
    assert report.applied == 1
    assert harness.severity(triaged["id"]) == "Major"  # 7h10m old, live for 2h10m: not Critical
    assert harness.severity(young["id"]) == "Minor"
    assert harness.severity(top["id"]) == "Critical"
    # One read to judge it, one fresh read to re-check it before the edit; none for the others.
    assert updates_requests(harness) == [triaged["id"], triaged["id"]]


def test_the_edit_action_restarts_a_severity_clock(harness: Harness) -> None:
    """Our own escalation is an update: Major for 6h from then, not from creation."""
    harness.write(LIVE_RULE.format(type="escalate_severity", since="severity"))
    start = harness.sandbox.now()  # on the hour (the harness), so no minute boundary is near
    item = harness.add("Minor for a while", age=3 * H + 30 * S)

    harness.cycle()
    assert harness.severity(item["id"]) == "Major"
    harness.sandbox.advance_clock((5 * H).total_seconds())  # 8h old: Critical if since creation
    harness.cycle()
    assert harness.severity(item["id"]) == "Major"
    harness.sandbox.advance_clock((1 * H + 5 * M + 30 * S).total_seconds())
    harness.cycle()
    assert harness.severity(item["id"]) == "Critical"
    with Ledger(harness.ledger_path) as ledger:
        events = ledger.events.history(rule="live-ladder")
    end = harness.sandbox.now()
    created = datetime.fromisoformat(item["created_at"])
    assert [e.reason.split(";")[0] for e in reversed(events)] == [
        f"Minor for 3h (since creation at {human_moment(created, start)})",
        f"Major for 6h 5m (since {human_moment(start, end)})",  # our own edit, at start
    ]


class _InterleavedOptions(EscalateSeverityOptions):
    type: Literal["interleaved"]  # type: ignore[assignment]


class _Interleaved(EscalateSeverity):
    """Escalates like the built-in; after the poll's first page, a human acts in the app."""

    options_model = _InterleavedOptions
    between: ClassVar[list[Callable[[], None]]] = []

    def evaluate(self, incidents: Sequence[Incident], *args: Any, **kwargs: Any) -> Any:
        actions = super().evaluate(incidents, *args, **kwargs)
        while _Interleaved.between:
            _Interleaved.between.pop()()
        return actions


def test_the_recheck_before_an_edit_reads_fresh_updates(harness: Harness) -> None:
    """Paused and resumed between poll and edit: the re-check sees the new entry and skips."""
    harness.write(LIVE_RULE.format(type="interleaved", since="live"))
    item = harness.add("Live for long", age=3 * H)
    control = harness.sandbox

    def pause_and_resume() -> None:
        control.update_incident(item["id"], status="Paused")
        control.update_incident(item["id"], status="Investigating")

    _Interleaved.between[:] = [pause_and_resume]
    runtime = harness.runtime(registry=RuleRegistry(extra={"interleaved": _Interleaved}))
    try:
        (report,) = run_once(runtime)
    finally:
        runtime.close()

    assert (report.planned, report.applied, report.skipped) == (1, 0, 1)
    assert harness.severity(item["id"]) == "Minor"
    assert harness.posts() == []


def test_the_anchor_is_never_before_creation() -> None:
    """An 'Accepted at' or update earlier than creation (clock skew) counts from creation."""
    skewed = with_history(incident(age=3 * H), accepted=4 * H)
    before = [update(skewed, 4 * H, "Investigating", "Minor")]
    assert "since creation at 09:00 UTC" in plan("live", skewed, before)[0][1]
    assert "since creation at 09:00 UTC" in plan("severity", skewed, before)[0][1]


def test_an_incident_added_live_was_accepted_when_created(harness: Harness) -> None:
    """The sandbox dates 'Accepted at' of an incident added past triage from its creation, so a
    later move within live does not look like its entry into live."""
    harness.write(LIVE_RULE.format(type="escalate_severity", since="live"))
    item = harness.add("Declared fixing", age=3 * H + 30 * S, status="Fixing")
    harness.sandbox.update_incident(item["id"], status="Monitoring")

    accepted = next(
        t["value"]["value"]
        for t in harness.sandbox.incident(item["id"])["incident_timestamp_values"]
        if t["incident_timestamp"]["name"] == "Accepted at"
    )
    (report,) = harness.cycle()

    assert accepted == item["created_at"]
    assert report.applied == 1
    assert harness.severity(item["id"]) == "Major"
