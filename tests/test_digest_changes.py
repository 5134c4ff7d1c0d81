"""Every automated change in a digest, in words: phrasing, outside the filter, who may see
what, "and N more" (with and without [server] public_url), the daemon's page over real HTTP,
and the ledger columns (migration 0016) it all reads, on both backends."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from automations.config import load_config
from automations.digest import changes_page
from automations.digest.changes import phrase, sign
from automations.digest.changes_page import ChangesPages
from automations.digest.config import DEFAULT_SUBJECT
from automations.digest.content import DigestData
from automations.digest.render import Renderer
from automations.digest.service import Digests
from automations.errors import ConfigError
from automations.health_server import HealthServer
from automations.history import event_json
from automations.incidentio import Incident
from automations.ledger import Event, EventState, Ledger
from automations.metrics import Metrics
from tests.digest_support import (
    SMTP_TABLE,
    Clock,
    SMTPServer,
    digest_of,
    free_port,
    make_event,
    make_incident,
    open_digests,
    parts,
    write_config,
)
from tests.engine_harness import Harness
from tests.factories import CATALOG, NOW
from tests.ledger_backends import LedgerTarget, older_ledger
from tests.sandbox_server import SandboxControl
from tests.test_engine_sandbox import ESCALATE
from tests.test_health_metrics import running_daemon, wait_for

H = timedelta(hours=1)
DAY = timedelta(days=1)
LONDON = ZoneInfo("Europe/London")
SECTIONS = ("figures", "live", "opened", "resolved", "automations")
# Monday 23 November 2026, 08:00:30 UTC: just after a weekday 08:00 run.
T0 = datetime(2026, 11, 23, 8, 0, 30, tzinfo=UTC)


def event(incident: Incident, **fields: Any) -> Event:
    """An applied change an hour ago on ``incident``, recorded as today's engine claims it."""
    fields.setdefault("body", {"severity_id": "SEV3"})
    fields.setdefault("recorded", True)
    return make_event(incident, at=NOW - H, **fields)


def words(one: Event) -> str:
    what, why = phrase(one, CATALOG)
    return f"{what}: {why}" if why else what


def digest(incidents: list[Incident], events: list[Event], **options: Any) -> DigestData:
    return digest_of(incidents, events, **options)


# --- phrasing ------------------------------------------------------------------------------

INCIDENT = make_incident("Checkout down", age=8 * H, number=7)


def test_an_escalation_reads_raised_to_with_how_long_it_was_what() -> None:
    """kind escalate: 'Raised to Critical: live for 6h 3m as Major' (UTC moment dropped)."""
    raised = event(
        INCIDENT,
        kind="escalate",
        details={"from": "Major", "to": "Critical", "step": 2},
        reason="live for 6h 3m (since 01:57 UTC); step 2 (after 6h): severity Major -> Critical",
    )
    assert words(raised) == "Raised to Critical: live for 6h 3m as Major"
    anchored = replace(raised, reason="Major for 6h (since 24 Nov 03:10 UTC); step 2 (after 6h)")
    assert words(anchored) == "Raised to Critical: Major for 6h"


def test_a_change_to_a_less_severe_severity_reads_lowered_to() -> None:
    """A severity change towards a lower rank (a plugin's) reads 'Lowered to Minor'."""
    lowered = event(
        INCIDENT,
        kind="escalate",
        details={"from": "Critical", "to": "Minor", "step": 1},
        reason="quiet for 2d; step 1 (after 2d): severity Critical -> Minor",
    )
    assert words(lowered) == "Lowered to Minor: quiet for 2d as Critical"


def test_a_status_change_says_what_it_was_and_why() -> None:
    """kind status: 'Status set to Declined: was Triage; idle for 3d (>= 2d)'."""
    declined = event(
        INCIDENT,
        kind="status",
        details={"from": "Triage", "to": "Declined"},
        reason="Triage -> Declined: idle for 3d (>= 2d)",
        body={"incident_status_id": "ST-DECLINED"},
    )
    assert words(declined) == "Status set to Declined: was Triage; idle for 3d (>= 2d)"


def test_a_mirrored_custom_field_says_the_field_and_value() -> None:
    """kind mirror: 'Phase set to Active: status category is live' (its moment dropped)."""
    mirrored = event(
        INCIDENT,
        kind="mirror",
        details={"field": "Phase", "to": "Active"},
        reason="status category is live since 06:00 UTC; Phase set to 'Active'",
    )
    assert words(mirrored) == "Phase set to Active: status category is live"


def test_a_notification_only_action_reads_announced() -> None:
    """kind notice (effect notify, empty edit body): 'Announced: <reason>'."""
    notice = event(
        INCIDENT,
        kind="notice",
        details={"since": NOW.isoformat(), "repeat": 0},
        reason="Still live: live for 6h (since 02:00 UTC)",
        body={},
    )
    assert words(notice) == "Announced: Still live: live for 6h"


def test_an_old_row_without_kind_falls_back_to_its_edit_body() -> None:
    """Rows from before migration 0016: the body says it (severity, status, field, role, none)."""
    old = event(INCIDENT, recorded=False, reason="old words")
    assert words(old) == "Severity set to Critical: old words"
    assert words(replace(old, request_body={"incident": {}})) == "Announced: old words"
    body = {
        "incident": {
            "incident_status_id": "ST-CLOSED",
            "custom_field_entries": [{"custom_field_id": "CF-PHASE", "values": []}],
            "incident_role_assignments": [
                {"incident_role_id": CATALOG.roles[0].id, "assignee": {"email": "ada@example.com"}}
            ],
        }
    }
    assert phrase(replace(old, request_body=body), CATALOG)[0] == (
        f"Status set to Closed; Phase cleared; {CATALOG.roles[0].name} assigned to ada@example.com"
    )


# --- which changes, in which order ---------------------------------------------------------


def test_changes_outside_the_filter_follow_the_ones_inside() -> None:
    """A change on an incident the digest did not fetch is listed after the others, marked."""
    inside = make_incident("In the filter", age=8 * H, number=1)
    elsewhere = make_incident("Another team's outage", age=8 * H, number=2)
    data = digest(
        [inside],
        [
            event(elsewhere, kind="notice", body={}, reason="Still live"),
            make_event(inside, at=NOW - 2 * H, body={"severity_id": "SEV2"}, recorded=True),
        ],
    )
    assert [(a.reference, a.outside) for a in data.actions] == [("INC-1", False), ("INC-2", True)]
    assert data.actions[1].name == "Another team's outage"
    assert data.actions[1].link == "https://app.incident.io/acme/incidents/2"  # as permalinks
    assert (data.figures.actions, data.figures.actions_outside) == (2, 1)
    text, html = rendered(data)
    assert text.index("INC-1  Severity set to Major") < text.index("Outside this digest:")
    assert text.index("Outside this digest:") < text.index("INC-2  Announced: Still live")
    assert "Automated changes: 2 (1 outside this digest)" in text
    assert "2 automated changes (1 outside this digest)" in html
    assert html.index("Severity set to Major") < html.index("Outside this digest")


@pytest.mark.parametrize("flag", ["include_private", "include_test"])
def test_private_and_test_changes_outside_the_filter_only_when_asked(flag: str) -> None:
    """Stored visibility and mode decide for incidents not fetched; unknown counts as hidden."""
    secret = (
        make_incident("Project Falcon", age=8 * H, private=True, number=3)
        if flag == "include_private"
        else make_incident("Fire drill", age=8 * H, mode="test", number=3)
    )
    old = make_incident("Before 0016", age=8 * H, number=4)
    events = [event(secret), event(old, recorded=False)]
    hidden = digest([], events)
    assert hidden.actions == ()
    assert hidden.figures.actions == 0
    assert "INC-3" not in "".join(rendered(hidden))
    assert "Project Falcon" not in "".join(rendered(hidden))
    shown = digest([], events, **{flag: True})
    assert [a.reference for a in shown.actions] == ["INC-3"]
    both = digest([], events, include_private=True, include_test=True)
    assert sorted(a.reference for a in both.actions) == ["INC-3", "INC-4"]


def test_a_fetched_incident_is_judged_by_its_current_state() -> None:
    """Recorded public, private now (fetched, outside the filter's categories): not shown."""
    now_private = make_incident("Made private later", age=8 * H, private=True, number=5)
    recorded_public = replace(event(now_private), incident_private=False)
    data = digest([now_private], [recorded_public], categories=("closed",))
    assert data.actions == ()


def test_dry_runs_failures_and_changes_outside_the_window_are_not_changes() -> None:
    """Only applied or reconciled, non-dry-run changes inside the window count."""
    one = make_incident("One", age=8 * H, number=6)
    events = [
        replace(event(one), dry_run=True),
        replace(event(one), state=EventState.FAILED),
        make_event(one, at=NOW - 2 * DAY, body={"severity_id": "SEV3"}, recorded=True),
        replace(event(one), state=EventState.RECONCILED),
    ]
    assert len(digest([one], events).actions) == 1


# --- and N more ----------------------------------------------------------------------------


def rendered(data: DigestData, max_rows: int = 200) -> tuple[str, str]:
    out = Renderer("digest", LONDON).render(data, DEFAULT_SUBJECT, max_rows)
    return out.text, out.html


def many_changes(count: int) -> list[Event]:
    return [
        make_event(
            make_incident(f"Outage {i}", age=8 * H, number=100 + i),
            at=NOW - timedelta(minutes=i + 1),
            body={"severity_id": "SEV3"},
            recorded=True,
        )
        for i in range(count)
    ]


def test_past_the_row_limit_and_n_more_links_to_the_page() -> None:
    """With [server] public_url: 'and N more changes' links to the signed page of the window."""
    url = "https://automations.example.com/digests/daily/changes?from=a&to=b&sig=c"
    data = digest([], many_changes(12), changes_url=url)
    text, html = rendered(data, max_rows=5)
    assert len([line for line in text.splitlines() if "Severity set to Critical" in line]) == 5
    assert f'<a href="{url.replace("&", "&amp;")}"' in html
    assert "and 7 more changes: see them all" in html
    assert f"... and 7 more changes: {url}" in text


def test_without_a_public_url_and_n_more_says_how_to_see_them() -> None:
    """No page to link: the history command to run, and incident.io's incident list."""
    data = digest([make_incident("Listed", age=8 * H, number=1)], many_changes(12))
    text, html = rendered(data, max_rows=5)
    command = "automations history --since 2d --state applied --state reconciled"
    assert f"and 9 more changes: run `{command}` on the daemon's host" in text
    assert "incidents: https://app.incident.io/acme/incidents" in text
    assert f">{command}</code> on the daemon's host lists them all" in html
    assert '<a href="https://app.incident.io/acme/incidents"' in html


def test_public_url_must_be_http_and_needs_the_listener(tmp_path: Path) -> None:
    """[server] public_url: http(s) with a host, and only with enabled = true; else exit 78."""
    path = tmp_path / "automations.toml"
    for value, enabled, problem in (
        ("javascript:alert(1)", "true", "is not a public URL"),
        ("https://x.example.com/?a=1", "true", "is not a public URL"),
        ("https://automations.example.com", "false", "public_url needs the listener"),
    ):
        path.write_text(f'[server]\nenabled = {enabled}\npublic_url = "{value}"\n')
        with pytest.raises(ConfigError, match=problem) as caught:
            load_config(path)
        assert "server" in str(caught.value)
    path.write_text('[server]\nenabled = true\npublic_url = "https://a.example.com/auto/"\n')
    assert load_config(path).server.public_url == "https://a.example.com/auto"


# --- the page, over real HTTP --------------------------------------------------------------


def add(org: SandboxControl, name: str, **fields: Any) -> dict[str, Any]:
    created = (T0 - 7 * H).isoformat()
    fields.setdefault("status", "Investigating")
    fields.setdefault("severity", "Minor")
    return org.add_incident(name=name, created_at=created, updated_at=created, **fields)


def test_the_daemons_page_lists_every_change_the_digest_left_out(
    sandbox: SandboxControl, smtp: SMTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real engine escalates; the digest (outside its filter) shows 1 and links to the page,
    which over HTTP lists both public changes and never the private one; bad links refused."""
    sandbox.reset(incidents=0, now=T0)
    public = [add(sandbox, "Checkout down"), add(sandbox, "Search lagging")]
    secret = add(sandbox, "Project Falcon acquisition", visibility="private")
    port = free_port()
    server_table = (
        f'[server]\nenabled = true\nport = {port}\npublic_url = "http://127.0.0.1:{port}"\n'
    )
    extra = 'where = { status_category = ["closed"] }\nmax_incidents = 1\n'
    path = write_config(tmp_path, sandbox.base_url, smtp.port, extra=extra, more=ESCALATE)
    path.write_text(server_table + path.read_text())
    clock = Clock(T0)
    runtime, digests = open_digests(path, clock)
    server = HealthServer(
        Metrics(stale_after=timedelta(minutes=5)),
        host="127.0.0.1",
        port=port,
        pages=ChangesPages(lambda: digests),
    ).start()
    try:
        report = runtime.engine.run_cycle(runtime.rules, "test")
        assert report.applied == 3  # two public incidents and the private one
        clock.advance(minutes=1)
        text, html = parts(message_of(digests, clock))
        assert "Outside this digest:" in text
        assert "Automated changes: 2 (2 outside this digest)" in text
        assert "Raised to Critical: open for 7h as Minor" in text
        assert str(secret["reference"]) not in text + html
        link = next(line for line in text.splitlines() if "and 1 more change:" in line)
        url = link.split(": ", 1)[1]
        assert url.startswith(f"http://127.0.0.1:{port}/digests/daily/changes?from=")

        page = httpx.get(url, timeout=30)
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        for incident in public:
            assert f">{incident['reference']}</td><td>Raised to Critical: open for 7h as Minor" in (
                page.text
            )
        assert str(secret["reference"]) not in page.text
        assert "Project Falcon" not in page.text
        assert "2 changes" in page.text
        monkeypatch.setattr(changes_page, "PAGE_ROWS", 1)  # the bound, and its note
        bounded = httpx.get(url, timeout=30).text
        assert "Showing the newest 1 of 2 changes" in bounded
        assert bounded.count("Raised to Critical") == 1

        query = parse_qs(urlsplit(url).query)
        base = f"http://127.0.0.1:{port}/digests/daily/changes"
        forged = {"from": query["from"][0], "to": query["to"][0], "sig": "0" * 32}
        assert httpx.get(base, params=forged, timeout=30).status_code == 403
        wider = {**forged, "from": "2026-11-01T00:00:00Z"}
        wider["sig"] = sign(runtime.ledger.meta.link_key(), "daily", wider["from"], wider["to"])
        assert httpx.get(base, params=wider, timeout=30).status_code == 200  # a signed window
        bad = {**forged, "from": "yesterday"}
        assert httpx.get(base, params=bad, timeout=30).status_code == 400
        other = f"http://127.0.0.1:{port}/digests/weekly/changes"
        assert httpx.get(other, params=forged, timeout=30).status_code == 404
    finally:
        server.stop()
        runtime.close()


def message_of(digests: Digests, clock: Clock) -> EmailMessage:
    """The digest as it would be mailed now (built and rendered, not sent)."""
    rendered_now = digests.compose("daily", clock.now)
    raw = digests.message("daily", rendered_now, "<test@example.com>", None)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


# --- the ledger columns (migration 0016) ---------------------------------------------------


def test_a_claim_keeps_kind_details_visibility_and_mode(ledger: Ledger) -> None:
    """Written at claim time and read back on either backend; a re-armed claim replaces them."""
    claim: dict[str, Any] = {
        "rule": "escalate",
        "incident_id": "01INC7",
        "incident_reference": "INC-7",
        "event_key": "escalate/01INC7/severity-SEV3",
        "reason": "live for 6h",
        "request_body": {"incident": {"severity_id": "SEV3"}},
        "now": NOW,
    }
    assert ledger.events.claim(
        **claim,
        kind="escalate",
        details={"from": "Major", "to": "Critical", "step": 2},
        incident_private=True,
        incident_mode="standard",
    )
    got = ledger.events.get(claim["event_key"])
    assert got is not None
    assert (got.kind, got.details, got.incident_private, got.incident_mode) == (
        "escalate",
        {"from": "Major", "to": "Critical", "step": 2},
        True,
        "standard",
    )
    assert event_json(got)["details"] == {"from": "Major", "to": "Critical", "step": 2}
    ledger.events.mark_failed(claim["event_key"], error="boom", now=NOW)
    ledger.events.rearm_failed(now=NOW)
    assert ledger.events.claim(**claim, kind="status", incident_private=False, incident_mode="test")
    again = ledger.events.get(claim["event_key"])
    assert again is not None
    assert (again.kind, again.details, again.incident_private, again.incident_mode) == (
        "status",
        None,
        False,
        "test",
    )


def test_rows_from_before_0016_read_as_unknown(ledger_target: LedgerTarget) -> None:
    """An older ledger gains the columns on open; its rows read None (digests: fall back)."""
    with older_ledger(ledger_target, "0016_event_kinds") as execute:
        execute(
            "INSERT INTO events (rule, incident_id, incident_reference, event_key, state, reason,"
            " request_body, claimed_at, finished_at) VALUES ('r', 'i', 'INC-1', 'r/i/0',"
            " 'applied', 'old', '{\"incident\": {\"severity_id\": \"SEV3\"}}', ?, ?)",
            [NOW.isoformat(timespec="microseconds")] * 2,
        )
    with Ledger(ledger_target) as opened:
        [old] = opened.events.history()
    assert (old.kind, old.details, old.incident_private, old.incident_mode) == (None,) * 4
    assert phrase(old, CATALOG) == ("Severity set to Critical", "old")


def test_a_running_daemon_serves_the_page_its_digest_links_to(
    harness: Harness, smtp: SMTPServer
) -> None:
    """`automations run` with [server] public_url: `digest preview` links past the row limit to
    the daemon's page, which lists both changes its rule made."""
    port = free_port()
    server = f'[server]\nenabled = true\nport = {port}\npublic_url = "http://127.0.0.1:{port}"\n'
    digest_table = (
        '\n[[digests]]\nname = "daily"\ncron = "0 8 1 1 *"\ntimezone = "UTC"\n'
        'to = ["oncall@example.com"]\nsections = ["figures", "automations"]\nmax_incidents = 1\n'
    )
    rules = ESCALATE.replace('"1m"', '"5s"')
    harness.write(server + SMTP_TABLE.format(port=smtp.port) + rules + digest_table)
    first, second = harness.add("Stuck", age=3 * H), harness.add("Also stuck", age=3 * H)
    applied = 'automations_actions_total{outcome="applied",rule="escalate-minor"} 2.0'
    with running_daemon(harness):
        wait_for(f"http://127.0.0.1:{port}/metrics", applied, timeout=120)
        # A window ends at a whole minute of API time (digest/service.py): a minute on, the
        # window surely holds changes made a moment ago.
        harness.sandbox.advance_clock(60)
        preview = harness.cli("digest", "preview", "daily", timeout=120)
        assert preview.returncode == 0, preview.stderr
        lines = [x for x in preview.stdout.splitlines() if "and 1 more change:" in x]
        assert len(lines) == 1, preview.stdout
        line = lines[0]
        page = httpx.get(line.split(": ", 1)[1], timeout=30)
    assert page.status_code == 200
    for incident in (first, second):
        # Their age when the rule ran: 3h, or 2h 59m if the daemon's first poll came a few
        # seconds after they were added (both mean the 3h-old incidents were escalated).
        row = rf">{incident['reference']}</td><td>Raised to Major: open for (3h|2h 59m) as Minor"
        assert re.search(row, page.text), page.text
