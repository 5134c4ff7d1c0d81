"""The 100 KB budget: 200 incidents with every section on still fit in one unclipped mail.

The on-call and follow-ups sections get realistic data of their own types: six
schedules of two rotations each, and as many follow-ups as the section lists (its
cap) with more left over.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from automations.digest.config import DEFAULT_SUBJECT, SECTIONS
from automations.digest.content import DigestData
from automations.digest.follow_ups import ROW_LIMIT, FollowUpRow, FollowUps
from automations.digest.oncall import OnCall, OnCallPerson, ScheduleRow
from automations.digest.render import HTML_LIMIT, Renderer
from automations.digest.trends import trend_window
from automations.incidentio import Incident
from automations.ledger import Event
from automations.schedules import CronSchedule
from tests.digest_support import digest_of, make_event, make_incident
from tests.factories import NOW

LONDON = ZoneInfo("Europe/London")
SHIPPED = Path(__file__).resolve().parents[1] / "templates" / "digest"
NAMES = (
    "Checkout latency spike in eu-west-1",
    "Elevated 5xx errors from payments-api",
    "Database connection pool exhausted on ledger",
    "Push notifications not delivered on Android",
    "Webhook deliveries delayed for notifications",
    "Partial outage of api-gateway in us-east-1",
)


def organisation() -> tuple[list[Incident], list[Event]]:
    """200 incidents of the last 8 weeks: 70 live, the rest opened and resolved at a varied
    pace (some in the window), every severity; an automated change on 60 of them."""
    severities = ["Critical", "Major", "Minor", "Minor", None]
    incidents = []
    for i in range(200):
        name = f"{NAMES[i % len(NAMES)]} ({i:03d})"
        severity = severities[i % len(severities)]
        if i < 70:
            age = timedelta(hours=3 + i * 5)
            incidents.append(make_incident(name, age=age, severity=severity, number=2000 + i))
            continue
        age = timedelta(hours=2 + (i - 70) ** 1.5 * 0.9)
        incidents.append(
            make_incident(
                name,
                age=age,
                severity=severity,
                status="Closed" if i % 2 else "Documenting",
                resolved_after=min(age, timedelta(minutes=25 + (i * 37) % 600)),
                number=2000 + i,
            )
        )
    events = [
        make_event(
            incidents[i], at=NOW - timedelta(minutes=10 * i + 5), body={"severity_id": "SEV3"}
        )
        for i in range(0, 120, 2)
    ]
    return incidents, events


def every_section() -> DigestData:
    incidents, events = organisation()
    data = digest_of(
        incidents,
        events,
        name="payments",
        trend=trend_window(CronSchedule("0 8 * * mon-fri", LONDON), NOW),
    )
    people = ("Alice Chen", "Ben Okafor", "Carla Mendes", "Dev Patel", "Elena Petrova")
    oncall = OnCall(
        schedules=tuple(
            ScheduleRow(
                name=f"Schedule {k} primary",
                link=f"https://app.incident.io/acme/on-call/schedules/01SCHEDULE{k:016d}",
                people=(
                    OnCallPerson(people[k % 5], "Primary"),
                    OnCallPerson(people[(k + 1) % 5], "Shadow"),
                ),
                handover_at=NOW + timedelta(hours=k + 1),
                handover_in=timedelta(hours=k + 1),
                next_people=(OnCallPerson(people[(k + 2) % 5], "Primary"),),
            )
            for k in range(6)
        )
    )
    incident = incidents[100]
    follow_ups = FollowUps(
        rows=tuple(
            FollowUpRow(
                id=f"01FOLLOWUP{k:016d}",
                title=f"Write a runbook for {NAMES[k % 6]}",
                reference=incident.reference,
                incident_name=incident.name,
                link=incident.permalink,
                assignee="Uma Iyer" if k % 3 else "team Payments",
                created_at=NOW - timedelta(days=9, hours=k),
                age=timedelta(days=9, hours=k),
                priority="High" if k % 2 else None,
            )
            for k in range(ROW_LIMIT)
        ),
        outstanding=ROW_LIMIT + 5,
        completed=7,
        more_url="https://app.incident.io/acme/follow-ups",
    )
    return replace(data, oncall=oncall, follow_ups=follow_ups)


def test_200_incidents_with_every_section_fit_under_100_kb(tmp_path: Path) -> None:
    """Every section shown, every row kept (no shrinking), the HTML under HTML_LIMIT."""
    data = every_section()
    renderer = Renderer("digest", LONDON)
    rendered = renderer.render(data, DEFAULT_SUBJECT, 200)
    size = len(rendered.html.encode())
    assert size < HTML_LIMIT, f"{size} bytes"
    assert rendered.data.shown_sections == SECTIONS
    assert rendered.data.more == {}  # the budget held: no row dropped to fit
    assert rendered.data.shown_rows == data.shown_rows == 152  # 70 live, 14 + 8, 60 changes
    assert "Trends · last 7 days" in rendered.html
    assert ">On call<" in rendered.html
    assert "Schedule 5 primary" in rendered.html
    assert ">Follow-ups<" in rendered.html
    assert "and 5 more on incident.io" in rendered.html


def test_the_trends_section_is_compact(tmp_path: Path) -> None:
    """The chart costs a few KB, whatever the number of incidents: rows are one line each."""
    data = every_section()
    renderer = Renderer("digest", LONDON)
    with_trends = len(renderer.render(data, DEFAULT_SUBJECT, 200).html.encode())
    without = len(renderer.render(replace(data, trends=None), DEFAULT_SUBJECT, 200).html.encode())
    assert 0 < with_trends - without < 7_000  # measured: 5.6 KB for 7 days
