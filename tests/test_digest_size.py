"""The 100 KB budget: 200 incidents with every section on still fit in one unclipped mail.

Sections another part of issue 15 builds (on-call, follow-ups) get realistic filler
and, while their templates are not shipped yet, a stand-in template of the same
markup as the other sections' rows (one table row per item, CSS classes); once the
real template exists it is used instead, and the filler must be replaced by that
section's own data type.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from automations.digest.config import DEFAULT_SUBJECT, SECTIONS
from automations.digest.content import DigestData, build_digest
from automations.digest.render import HTML_LIMIT, Renderer
from automations.digest.trends import trend_window
from automations.incidentio import Incident
from automations.ledger import Event
from automations.schedules import CronSchedule
from tests.digest_support import make_event, make_incident
from tests.factories import CATALOG, NOW

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


@dataclass(frozen=True)
class OnCallFiller:
    schedule: str
    people: str
    until: str
    next: str


@dataclass(frozen=True)
class FollowUpFiller:
    reference: str
    title: str
    assignee: str
    age: str


STAND_INS = {
    "oncall": (
        "<h2>On call now</h2>\n"
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0">\n'
        "{% for s in digest.oncall %}"
        '<tr valign="top"><td class="r">{{ s.schedule }}</td><td class="n">{{ s.people }}'
        '<br><span class="m">until {{ s.until }} · next {{ s.next }}</span></td></tr>\n'
        "{% endfor %}</table>\n",
        "\nON CALL NOW\n{% for s in digest.oncall %}  {{ s.schedule }}: {{ s.people }} "
        "until {{ s.until }}, next {{ s.next }}\n{% endfor %}",
    ),
    "follow_ups": (
        "<h2>Follow-ups</h2>\n"
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0">\n'
        "{% for f in digest.follow_ups %}"
        '<tr valign="top"><td class="r">{{ f.reference }}</td><td class="n">{{ f.title }}'
        '<br><span class="m">{{ f.assignee }} · open {{ f.age }}</span></td></tr>\n'
        "{% endfor %}</table>\n",
        "\nFOLLOW-UPS\n{% for f in digest.follow_ups %}  {{ f.reference }}  {{ f.title }}\n"
        "    {{ f.assignee }} · open {{ f.age }}\n{% endfor %}",
    ),
}


def stand_in_templates(folder: Path) -> Path:
    """Stand-ins for the sections whose templates are not shipped (yet)."""
    target = folder / "digest"
    target.mkdir(parents=True)
    for section, (html, text) in STAND_INS.items():
        if not (SHIPPED / f"{section}.html.j2").exists():
            (target / f"{section}.html.j2").write_text(html)
            (target / f"{section}.txt.j2").write_text(text)
    return folder


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
    data = build_digest(
        name="payments",
        timezone="Europe/London",
        incidents=incidents,
        catalog=CATALOG,
        events=events,
        now=NOW,
        window_start=NOW - timedelta(days=1),
        window_end=NOW,
        sections=SECTIONS,
        trend=trend_window(CronSchedule("0 8 * * mon-fri", LONDON), NOW),
    )
    people = ("Alice Chen, Ben Okafor", "Carla Mendes", "Dev Patel, Elena Petrova")
    oncall = tuple(
        OnCallFiller(f"Schedule {k} primary", people[k % 3], "Mon 30 Nov 09:00", "Hana Sato")
        for k in range(6)
    )
    follow_ups = tuple(
        FollowUpFiller(f"INC-{1900 + k}", f"Write a runbook for {NAMES[k % 6]}", "Uma Iyer", "9d")
        for k in range(25)
    )
    return replace(data, oncall=oncall, follow_ups=follow_ups)


def test_200_incidents_with_every_section_fit_under_100_kb(tmp_path: Path) -> None:
    """Every section shown, every row kept (no shrinking), the HTML under HTML_LIMIT."""
    data = every_section()
    renderer = Renderer("digest", LONDON, stand_in_templates(tmp_path))
    rendered = renderer.render(data, DEFAULT_SUBJECT, 200)
    size = len(rendered.html.encode())
    assert size < HTML_LIMIT, f"{size} bytes"
    assert rendered.data.shown_sections == SECTIONS
    assert rendered.data.more == {}  # the budget held: no row dropped to fit
    assert rendered.data.shown_rows == data.shown_rows == 152  # 70 live, 14 + 8, 60 changes
    assert "Trends · last 7 days" in rendered.html
    assert "On call now" in rendered.html
    assert "Follow-ups" in rendered.html


def test_the_trends_section_is_compact(tmp_path: Path) -> None:
    """The chart costs a few KB, whatever the number of incidents: rows are one line each."""
    data = every_section()
    renderer = Renderer("digest", LONDON, stand_in_templates(tmp_path))
    with_trends = len(renderer.render(data, DEFAULT_SUBJECT, 200).html.encode())
    without = len(renderer.render(replace(data, trends=None), DEFAULT_SUBJECT, 200).html.encode())
    assert 0 < with_trends - without < 7_000  # measured: 5.6 KB for 7 days
