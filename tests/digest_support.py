"""Shared pieces of the digest tests: a real SMTP server, a settable clock, a config writer.

The SMTP server is aiosmtpd on 127.0.0.1 (a free port), so messages travel
over real SMTP and tests assert on what was received, never on smtplib calls.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from automations.config import load_config
from automations.digest.config import SECTIONS
from automations.digest.content import DigestData, build_digest
from automations.digest.service import Digests
from automations.incidentio import Incident, IncidentTimestamp, IncidentTimestampValue
from automations.incidentio.models import TimestampValue
from automations.ledger import Event, EventState, Ledger
from automations.runtime import Runtime, build_runtime
from tests.factories import CATALOG, NOW
from tests.factories import incident as factory_incident
from tests.secret_values import SANDBOX_KEY


def free_port() -> int:
    """A loopback port nothing listens on (yet)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Received:
    """One message as the server got it."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _Handler:
    reject: Callable[[str], str | None] = lambda _address: None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Recipients per transaction, as real servers cap them (Postfix: 1000, Gmail: 100).
    rcpt_limit: int | None = None

    async def handle_RCPT(  # the aiosmtpd hook names
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if self.rcpt_limit is not None and len(envelope.rcpt_tos) >= self.rcpt_limit:
            return "452 4.5.3 Too many recipients"
        refusal = self.reject(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = bytes(envelope.original_content or envelope.content)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), raw))
        return "250 Message accepted for delivery"


class SMTPServer:
    """aiosmtpd in a thread; ``start()`` may come after a client first found it down."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.handler = _Handler()
        self._controller: Any = None

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def start(self) -> SMTPServer:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


class Clock:
    """The time the code under test sees; tests move it instead of sleeping."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


SMTP_TABLE = """
[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
sender = "Incident Bot <incidents@example.com>"
timeout_seconds = 30
retry_backoff = "1m"
retry_backoff_max = "10m"
"""

DIGEST_TABLE = """
[[digests]]
name = "{name}"
cron = "{cron}"
timezone = "{timezone}"
to = ["oncall@example.com"]
cc = ["support@example.com"]
bcc = ["archive@example.com"]
"""


def write_config(
    tmp_path: Path,
    base_url: str,
    smtp_port: int,
    *,
    name: str = "daily",
    cron: str = "0 8 * * mon-fri",
    timezone: str = "Europe/London",
    extra: str = "",
    more: str = "",
    store_url: str | None = None,
) -> Path:
    """A config with one digest (``extra`` lines go into its table; ``more`` after it); its
    ledger is ``store_url`` (PostgreSQL) when given, else a file under ``tmp_path``."""
    store = f'url = "{store_url}"' if store_url else f'path = "{tmp_path / "ledger.db"}"'
    text = (
        # the sandbox is pinned to fixed dates, a year away when the suite runs a year ahead
        f'[incident_io]\nbase_url = "{base_url}"\nmax_clock_skew = "off"\n\n'
        f"[store]\n{store}\n"
        + SMTP_TABLE.format(port=smtp_port)
        + DIGEST_TABLE.format(name=name, cron=cron, timezone=timezone)
        + extra
        + "\n"
        + more
    )
    path = tmp_path / "automations.toml"
    path.write_text(text)
    return path


def in_use_since(ledger_path: Path | str, digest: str, moment: datetime) -> None:
    """Make the ledger one that first scheduled ``digest`` at ``moment``, as a daemon started
    then would have: an occurrence after ``moment`` is a real one, not a first start's."""
    with Ledger(ledger_path) as ledger:
        ledger.outbox.first_scheduled(digest, now=moment)


def open_digests(
    config_path: Path, clock: Clock, *, in_use_for: timedelta | None = timedelta(days=1)
) -> tuple[Runtime, Digests]:
    """A runtime and its digests on ``clock``, as a fresh process would build them.

    The ledger is one in use for ``in_use_for`` already (each digest first scheduled that
    long before ``clock``, unless recorded earlier), so an occurrence just before ``clock``
    is sent. A first start on a new ledger sends no "missed" digest: ``in_use_for=None``.
    """
    config = load_config(config_path)
    if in_use_for is not None:
        for options in config.digests:
            ledger = config.store.url or config.store.path
            in_use_since(ledger, options.name, clock.now - in_use_for)
    runtime = build_runtime(config, SecretStr(SANDBOX_KEY), lock=False, clock=clock)
    try:
        return runtime, Digests.from_runtime(runtime, runtime.smtp_password, clock=clock)
    except BaseException:  # a refused digest (e.g. an unknown schedule): nothing left open
        runtime.close()
        raise


def tick_ok(digests: Digests) -> None:
    """``digests.tick()``, failing with each queued item's state and last error if not all ok."""
    if digests.tick():
        return
    details = []
    for name in digests.jobs:
        for period, state in digests.ledger.outbox.periods(name):
            item = digests.ledger.outbox.find(name, period)
            details.append(f"{name} {period}: {state} ({item.last_error if item else '?'})")
    raise AssertionError("tick() reported a failure: " + ("; ".join(details) or "nothing queued"))


def parts(message: EmailMessage) -> tuple[str, str]:
    """(text, html) of a multipart/alternative digest."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    return str(text.get_content()), str(html.get_content())


# --- pure builders (no I/O) ----------------------------------------------------------------


def make_incident(
    name: str,
    *,
    age: timedelta,
    status: str = "Investigating",
    severity: str | None = "Minor",
    resolved_after: timedelta | None = None,
    private: bool = False,
    mode: str = "standard",
    lead: bool = True,
    now: datetime | None = None,
    number: int | None = None,
) -> Incident:
    """An incident as the API returns it, with a permalink and, if resolved, a Resolved at.

    ``number`` fixes the ID and reference (golden files must not depend on test order).
    """
    now = now or NOW
    base = factory_incident(
        age=age, severity=severity, status=status, mode=mode, lead=lead, now=now
    )
    number = number if number is not None else int(base.reference.split("-")[1])
    update: dict[str, Any] = {
        "id": f"01INC{number:021d}",
        "reference": f"INC-{number}",
        "name": name,
        "visibility": "private" if private else "public",
        "permalink": f"https://app.incident.io/acme/incidents/{number}",
    }
    if resolved_after is not None:
        resolved = base.created_at + resolved_after
        update["incident_timestamp_values"] = (
            IncidentTimestampValue(
                incident_timestamp=IncidentTimestamp(id="TS-RES", name="Resolved at", rank=4),
                value=TimestampValue(value=resolved),
            ),
        )
        update["updated_at"] = resolved
    return base.model_copy(update=update)


def make_event(
    incident: Incident,
    *,
    at: datetime,
    body: dict[str, Any],
    rule: str = "escalate-stuck-minor",
    reason: str = "live for 2h (step 1: after 2h); severity Minor -> Major",
    state: EventState = EventState.APPLIED,
    kind: str | None = None,
    details: dict[str, Any] | None = None,
    recorded: bool = False,
) -> Event:
    """A ledger event as the engine records it; ``recorded``: with the incident's visibility
    and mode as the claim saw them (ledger migration 0016), else as an older row (unknown)."""
    return Event(
        id=1,
        rule=rule,
        incident_id=incident.id,
        incident_reference=incident.reference,
        event_key=f"{rule}/{incident.id}/x",
        state=state,
        reason=reason,
        request_body={"incident": body, "notify_incident_channel": False},
        request_id="req-1",
        error=None,
        dry_run=False,
        claimed_at=at,
        finished_at=at,
        attempts=1,
        incident_name=incident.name,
        kind=kind,
        details=details,
        incident_private=incident.is_private if recorded else None,
        incident_mode=incident.mode if recorded else None,
    )


def digest_of(
    incidents: list[Incident], events: list[Event], *, name: str = "daily", **options: Any
) -> DigestData:
    """``build_digest`` over the last day to NOW, every section, the factories' catalog."""
    return build_digest(
        name=name,
        timezone="Europe/London",
        incidents=incidents,
        catalog=CATALOG,
        events=events,
        now=NOW,
        window_start=NOW - timedelta(days=1),
        window_end=NOW,
        sections=SECTIONS,
        **options,
    )
