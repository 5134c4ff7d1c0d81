"""Digests end to end: sandbox data in, a real SMTP server (aiosmtpd) out, exactly once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from automations.digest.service import Digests
from automations.incidentio import IncidentFilter
from automations.ledger import Ledger, OutboxState
from tests.digest_support import (
    Clock,
    SMTPServer,
    open_digests,
    parts,
    tick_ok,
    write_config,
)
from tests.sandbox_server import SandboxControl
from tests.secret_values import SANDBOX_KEY

ROOT = Path(__file__).resolve().parents[1]
# Monday 23 November 2026, 30 s after the 08:00 (GMT) run of "0 8 * * mon-fri".
T0 = datetime(2026, 11, 23, 8, 0, 30, tzinfo=UTC)
PERIOD = "2026-11-23T08:00:00+00:00"


@pytest.fixture
def org(sandbox: SandboxControl) -> SandboxControl:
    """The seeded catalog, no incidents, the clock at T0."""
    sandbox.reset(incidents=0, now=T0)
    return sandbox


def listen(digests: Digests) -> list[tuple[str, str]]:
    """Every (digest, outcome) the digests' delivery listeners hear from now on."""
    calls: list[tuple[str, str]] = []
    digests.events.delivery_listeners.append(lambda name, outcome: calls.append((name, outcome)))
    return calls


def add(org: SandboxControl, name: str, *, age: timedelta, **fields: object) -> dict[str, object]:
    created = T0 - age
    fields.setdefault("status", "Investigating")
    fields.setdefault("severity", "Minor")
    return org.add_incident(
        name=name, created_at=created.isoformat(), updated_at=created.isoformat(), **fields
    )


def mentions(text: str, reference: object) -> bool:
    return re.search(rf"\b{re.escape(str(reference))}\b", text) is not None


class Tags(HTMLParser):
    """Every start tag and its attributes, to prove no markup came from incident text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def test_digest_arrives_with_both_parts_headers_and_the_sandbox_data(
    sandbox: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """The 08:00 digest reaches a real SMTP server; both parts list the sandbox's live incidents."""
    sandbox.reset(seed=1, incidents=200, now=T0)
    runtime, digests = open_digests(write_config(tmp_path, sandbox.base_url, smtp.port), Clock(T0))
    try:
        tick_ok(digests)
        live = list(runtime.client.iter_incidents(IncidentFilter().status_category(one_of="live")))
    finally:
        runtime.close()
    [got] = smtp.received
    assert got.mail_from == "incidents@example.com"
    assert sorted(got.rcpt_tos) == [
        "archive@example.com",
        "oncall@example.com",
        "support@example.com",
    ]
    message = got.message
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["From"] == "Incident Bot <incidents@example.com>"
    assert message["To"] == "oncall@example.com"
    assert message["Cc"] == "support@example.com"
    assert message["Bcc"] is None  # envelope only
    assert abs(parsedate_to_datetime(message["Date"]) - T0) < timedelta(seconds=2)
    # Unique, naming the period, and on one line (a folded one reads back with a space).
    assert re.fullmatch(r"<[0-9a-f]{16}\.20261123T0800@example\.com>", message["Message-ID"])
    assert message["X-Automations-Digest"] == "daily"
    assert message["Auto-Submitted"] == "auto-generated"
    text, html = parts(message)

    public = [i for i in live if not i.is_private and i.mode in ("standard", "retrospective")]
    hidden = [i for i in live if i.is_private]
    assert public, "seed 1 has public live incidents"
    assert hidden, "seed 1 has private live incidents"
    assert f"{len(public)} live" in message["Subject"]
    for incident in public:
        assert mentions(text, incident.reference), incident.reference
        assert f'href="{incident.permalink}"' in html
    for incident in hidden:
        assert not mentions(text, incident.reference)
        assert not mentions(html, incident.reference)
    critical = [i for i in public if i.severity is not None and i.severity.name == "Critical"]
    minor = [i for i in public if i.severity is not None and i.severity.name == "Minor"]
    # Most severe first, in both parts.
    first, last = critical[0].reference, minor[0].reference
    assert text.index(f"  {first}  ") < text.index(f"  {last}  ")
    assert html.index(f">{first}</a>") < html.index(f">{last}</a>")


def test_private_and_test_incidents_only_when_enabled(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """Private and test incidents are absent by default (names and counts), present when enabled."""
    add(org, "Payments API down", age=timedelta(hours=2), severity="Critical")
    secret = add(
        org, "Project Falcon acquisition leak", age=timedelta(hours=1), visibility="private"
    )
    drill = add(org, "Fire drill rehearsal", age=timedelta(minutes=30), mode="test")
    everything = (
        '\n[[digests]]\nname = "everything"\ncron = "0 8 * * mon-fri"\n'
        'timezone = "Europe/London"\nto = ["security@example.com"]\n'
        "include_private = true\ninclude_test = true\n"
    )
    path = write_config(tmp_path, org.base_url, smtp.port, more=everything)
    runtime, digests = open_digests(path, Clock(T0))
    try:
        tick_ok(digests)
    finally:
        runtime.close()
    by_digest = {r.message["X-Automations-Digest"]: r.message for r in smtp.received}
    default, full = by_digest["daily"], by_digest["everything"]

    text, html = parts(default)
    for body in (text, html):
        assert "Payments API down" in body
        for hidden in (secret, drill):
            assert str(hidden["name"]) not in body
            assert not mentions(body, hidden["reference"])
    assert "1 live" in default["Subject"]
    assert "Private incidents are not included" in text

    text, html = parts(full)
    for body in (text, html):
        for shown in (secret, drill):
            assert str(shown["name"]) in body
            assert mentions(body, shown["reference"])
        assert "private" in body
        assert "test" in body
    assert "3 live" in full["Subject"]


HOSTILE = [
    "<script>alert('x')</script> checkout down",
    '"><img src=x onerror=alert(1)> payments',
    "Split\r\nBcc: attacker@example.net\r\n\r\nInjected body",
    "Überweisungen hängen — 支付失败 🚨",
    "\u202eevil bidi override",
    "A" * 10_000,
]


def test_hostile_names_are_escaped_in_the_body_and_folded_in_the_subject(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """Markup is escaped, CR/LF cannot inject headers, long and non-ASCII names survive, cut."""
    for index, name in enumerate(HOSTILE):
        add(org, name, age=timedelta(hours=10 - index), severity="Critical")
    subject = 'subject = "{{ digest.worst.name }} | {{ digest.figures.live }} live"'
    path = write_config(tmp_path, org.base_url, smtp.port, extra=subject)
    runtime, digests = open_digests(path, Clock(T0))
    try:
        tick_ok(digests)
    finally:
        runtime.close()
    [got] = smtp.received
    message = got.message

    # Headers: the CR/LF name became one line; nothing was injected.
    header_block = got.raw.split(b"\r\n\r\n", 1)[0]
    assert b"attacker@example.net" not in header_block
    assert "attacker@example.net" not in got.rcpt_tos
    assert message["Bcc"] is None
    assert all(len(line) <= 998 for line in got.raw.split(b"\r\n"))
    assert message["Subject"] == "<script>alert('x')</script> checkout down | 6 live"
    assert "\n" not in message["Subject"]
    assert "\r" not in message["Subject"]

    text, html = parts(message)
    tags = Tags()
    tags.feed(html)
    names = {tag for tag, _ in tags.tags}
    assert "script" not in names
    assert "img" not in names
    attributes = {attr for _, attrs in tags.tags for attr, _ in attrs}
    assert not [a for a in attributes if a.startswith("on")]
    # Serialised by the inliner's HTML5 writer: <, > and & escaped in text, " in attributes.
    assert "&lt;script&gt;alert('x')&lt;/script&gt; checkout down" in html
    assert '"&gt;&lt;img src=x onerror=alert(1)&gt; payments' in html
    assert "<script>alert('x')</script> checkout down" in text  # plain text: shown as typed
    assert "Split Bcc: attacker@example.net Injected body" in text
    assert "Überweisungen hängen — 支付失败 🚨" in text
    assert "Überweisungen hängen" in html
    assert "\u202e" not in text
    assert "\u202e" not in html
    assert "evil bidi override" in text
    assert "A" * 199 + "…" in text
    assert "A" * 200 not in text
    assert "A" * 200 not in html
    assert len(got.raw) < 200_000


def test_smtp_down_then_up_delivers_exactly_once(org: SandboxControl, tmp_path: Path) -> None:
    """Refused connections are retried with backoff; once the server is up, one message."""
    add(org, "Checkout latency", age=timedelta(hours=1))
    server = SMTPServer()  # a port nobody listens on yet
    clock = Clock(T0)
    runtime, digests = open_digests(write_config(tmp_path, org.base_url, server.port), clock)
    assert digests.events is runtime.digest_events  # what the daemon's metrics listen to
    listened = listen(digests)
    try:
        assert not digests.tick()  # queued, first attempt refused
        item = runtime.ledger.outbox.find("daily", PERIOD)
        assert item is not None
        assert item.state == OutboxState.PENDING
        assert item.attempts == 1
        assert item.next_attempt_at == T0 + timedelta(minutes=1)
        assert item.last_error is not None
        assert "Connection refused" in item.last_error

        clock.advance(seconds=30)
        digests.tick()  # not due yet: no attempt
        assert runtime.ledger.outbox.find("daily", PERIOD).attempts == 1  # type: ignore[union-attr]

        clock.advance(seconds=31)
        assert not digests.tick()  # second attempt, still down: backoff doubles
        item = runtime.ledger.outbox.find("daily", PERIOD)
        assert item is not None
        assert item.attempts == 2
        assert item.next_attempt_at == clock.now + timedelta(minutes=2)

        server.start()
        clock.advance(minutes=2)
        tick_ok(digests)
        for _ in range(3):
            clock.advance(minutes=10)
            tick_ok(digests)
        item = runtime.ledger.outbox.find("daily", PERIOD)
        assert item is not None
        assert item.state == OutboxState.SENT
        assert item.attempts == 3
    finally:
        runtime.close()
        server.stop()
    assert len(server.received) == 1
    assert listened == [("daily", "failed"), ("daily", "failed"), ("daily", "sent")]


def test_restart_mid_retry_still_delivers_once(org: SandboxControl, tmp_path: Path) -> None:
    """A new process (new Ledger and outbox on the same file) resumes the retry; one message."""
    add(org, "Checkout latency", age=timedelta(hours=1))
    server = SMTPServer()
    clock = Clock(T0)
    path = write_config(tmp_path, org.base_url, server.port)
    runtime, digests = open_digests(path, clock)
    try:
        assert not digests.tick()
        queued = runtime.ledger.outbox.find("daily", PERIOD)
        assert queued is not None
    finally:
        runtime.close()  # "crash": nothing but the ledger file survives

    server.start()
    clock.advance(minutes=5)
    try:
        for _ in range(2):  # two more "processes"
            runtime, digests = open_digests(path, clock)
            try:
                tick_ok(digests)
            finally:
                runtime.close()
            clock.advance(minutes=1)
    finally:
        server.stop()
    [got] = server.received
    assert got.message["Message-ID"] == queued.message_id  # the stored bytes, not a re-render
    with Ledger(tmp_path / "ledger.db") as ledger:
        assert ledger.outbox.periods("daily") == [(PERIOD, OutboxState.SENT)]


def test_crash_after_smtp_accepted_is_the_one_duplicate(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """Killed between SMTP's 250 and the ledger update: resent once, with the same Message-ID.

    This is the case SMTP cannot rule out (README, Digests); it is sent twice, never more,
    and not before the crashed sender's lease has run out.
    """
    add(org, "Checkout latency", age=timedelta(hours=1))
    path = write_config(tmp_path, org.base_url, smtp.port)
    env = {**os.environ, "INCIDENT_IO_API_KEY": SANDBOX_KEY, "AUTOMATIONS_FAILPOINTS": "after_smtp"}
    command = [
        sys.executable,
        "-m",
        "automations",
        "digest",
        "send",
        "daily",
        "--config",
        str(path),
    ]
    crashed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert crashed.returncode == 137, crashed.stderr
    assert len(smtp.received) == 1
    with Ledger(tmp_path / "ledger.db") as ledger:
        [(period, state)] = ledger.outbox.periods("daily")
        assert state == OutboxState.SENDING

    clock = Clock(datetime.fromisoformat(period) + timedelta(seconds=5))
    runtime, digests = open_digests(path, clock)
    try:
        assert digests.outbox.deliver_due() == []  # the crashed sender's lease still holds
        lease = digests.outbox.lease
    finally:
        runtime.close()
    assert len(smtp.received) == 1
    clock.advance(seconds=(lease + timedelta(seconds=5)).total_seconds())
    for _ in range(2):
        runtime, digests = open_digests(path, clock)
        try:
            digests.outbox.deliver_due()
        finally:
            runtime.close()
    first, second = smtp.received
    assert first.raw == second.raw  # same bytes, same Message-ID: clients can fold them
    with Ledger(tmp_path / "ledger.db") as ledger:
        assert ledger.outbox.periods("daily") == [(period, OutboxState.SENT)]


def test_refused_recipients_fail_permanently(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """A 550 for every recipient is final: marked failed, never retried."""
    smtp.handler.reject = lambda address: "550 5.1.1 no such mailbox"
    add(org, "Checkout latency", age=timedelta(hours=1))
    clock = Clock(T0)
    runtime, digests = open_digests(write_config(tmp_path, org.base_url, smtp.port), clock)
    listened = listen(digests)
    try:
        assert not digests.tick()
        for _ in range(3):
            clock.advance(hours=1)
            digests.tick()
        item = runtime.ledger.outbox.find("daily", PERIOD)
        assert item is not None
        assert item.state == OutboxState.FAILED
        assert item.attempts == 1
        assert item.last_error is not None
        assert "550" in item.last_error
    finally:
        runtime.close()
    assert smtp.received == []
    assert listened == [("daily", "failed")]


def test_unsent_digest_expires(org: SandboxControl, tmp_path: Path) -> None:
    """Still undelivered after expire_after: given up, and not sent when the server returns."""
    add(org, "Checkout latency", age=timedelta(hours=1))
    server = SMTPServer()
    clock = Clock(T0)
    path = write_config(tmp_path, org.base_url, server.port, extra='expire_after = "2h"')
    runtime, digests = open_digests(path, clock)
    try:
        digests.tick()
        server.start()
        clock.advance(hours=2)
        digests.tick()
        item = runtime.ledger.outbox.find("daily", PERIOD)
        assert item is not None
        assert item.state == OutboxState.EXPIRED
    finally:
        runtime.close()
        server.stop()
    assert server.received == []


def test_send_now_and_send_to_one_address(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """send_now goes through the outbox as its own period; with ``to`` it is not recorded."""
    add(org, "Checkout latency", age=timedelta(hours=1))
    clock = Clock(T0 + timedelta(hours=3))
    runtime, digests = open_digests(write_config(tmp_path, org.base_url, smtp.port), clock)
    try:
        assert digests.send_now("daily", to=["me@example.com"]) is None
        assert runtime.ledger.outbox.periods("daily") == []
        delivery = digests.send_now("daily")
        assert delivery is not None
        assert delivery.outcome == OutboxState.SENT
        assert delivery.period == "2026-11-23T11:00:30+00:00"
        # The 08:00 run is older than this send: no catch-up duplicate.
        assert digests.due("daily") is None
    finally:
        runtime.close()
    test_copy, recorded = smtp.received
    assert test_copy.rcpt_tos == ["me@example.com"]
    assert test_copy.message["To"] == "me@example.com"
    assert test_copy.message["Cc"] is None
    assert sorted(recorded.rcpt_tos) == [
        "archive@example.com",
        "oncall@example.com",
        "support@example.com",
    ]


def test_a_failing_listener_does_not_stop_delivery(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """Metrics hooks that raise are logged and ignored."""

    def broken(name: str, outcome: str) -> None:
        raise RuntimeError("metrics backend down")

    add(org, "Checkout latency", age=timedelta(hours=1))
    runtime, digests = open_digests(write_config(tmp_path, org.base_url, smtp.port), Clock(T0))
    digests.events.delivery_listeners.append(broken)
    try:
        tick_ok(digests)
    finally:
        runtime.close()
    assert len(smtp.received) == 1
