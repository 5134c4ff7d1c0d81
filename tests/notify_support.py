"""Shared by the notification tests: a Sender of our own protocol, notices, queued events.

``RecordingSender`` implements automations.notify.sender.Sender (our own seam,
not a third-party part): it records each notification it accepted and can be
told to fail N times (NotifyRetryable), to reject (NotifyRejected), to take a
while, or to hang once it has accepted one (a receiver that got the request
while the sender never heard back).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from automations.backoff import Backoff
from automations.errors import NotifyRejected, NotifyRetryable
from automations.failpoints import Failpoints
from automations.ledger import Ledger
from automations.notify.notice import ACTION_APPLIED, IncidentSummary, Notice
from automations.notify.outbox import NotificationOutbox, OnOutcome
from automations.notify.sender import ChannelPolicy, Sender
from automations.notify.spec import NotifySpec, Policy, QueuedNotice, notices_for
from tests import digest_support

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
BACKOFF = Backoff(timedelta(seconds=30), timedelta(minutes=5))
RULE = "escalate-minor"


class Clock(digest_support.Clock):
    """The digest tests' movable clock, starting at T0 unless told."""

    def __init__(self, now: datetime = T0) -> None:
        super().__init__(now)


class RecordingSender:
    """A Sender that accepts, fails ``fail`` times first, rejects, is slow, or hangs."""

    def __init__(
        self,
        *,
        fail: int = 0,
        reject: bool = False,
        delay: float = 0.0,
        hang_after: str | None = None,
    ) -> None:
        self.fail = fail
        self.reject = reject
        self.delay = delay
        self.hang_after = hang_after  # accept this key, then never return (until released)
        self.released = threading.Event()
        self.accepted: list[tuple[str, Notice]] = []  # (key, notice), in order
        self.calls = 0
        self._lock = threading.Lock()

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self.accepted]

    def send(self, notice: Notice, *, key: str) -> None:
        with self._lock:
            self.calls += 1
            call = self.calls
        if self.delay:
            time.sleep(self.delay)
        if call <= self.fail:
            raise NotifyRetryable(f"receiver unavailable: HTTP 503 (call {call})")
        if self.reject:
            raise NotifyRejected("receiver refused: HTTP 410 Gone")
        with self._lock:
            self.accepted.append((key, notice))
        if key == self.hang_after:
            self.released.wait()


def incident(number: int = 1, *, private: bool = False) -> IncidentSummary:
    return IncidentSummary(
        id=f"01INCIDENT{number:04d}",
        reference=f"INC-{number}",
        name=f"Checkout latency {number}",
        permalink=f"https://app.incident.io/incidents/{number}",
        severity="Major",
        status="Investigating",
        private=private,
    )


def notice(key: str, *, number: int = 1, private: bool = False, at: datetime = T0) -> Notice:
    return Notice(
        event_key=key,
        type=ACTION_APPLIED,
        rule=RULE,
        action="escalate",
        reason="live for 2h 5m (over 2h): Minor -> Major",
        occurred_at=at,
        incident=incident(number, private=private),
    )


def apply(
    ledger: Ledger,
    key: str,
    channels: Sequence[str],
    policies: Mapping[str, ChannelPolicy],
    *,
    number: int = 1,
    private: bool = False,
    announce: str | None = None,
    now: datetime = T0,
) -> list[QueuedNotice]:
    """Claim an action with its notify spec and record it applied, as the engine does."""
    assert ledger.events.claim(
        rule=RULE,
        incident_id=f"01INCIDENT{number:04d}",
        incident_reference=f"INC-{number}",
        incident_name=f"Checkout latency {number}",
        event_key=key,
        reason="live for 2h 5m (over 2h): Minor -> Major",
        request_body={"incident": {"severity_id": "major"}},
        notify=NotifySpec(tuple(channels), announce),
        now=now,
    )
    event = ledger.events.get(key)
    assert event is not None
    queued = notices_for(event.notify, notice(key, number=number, private=private), policies)
    ledger.events.mark_applied(key, request_id="req-1", now=now, notices=queued)
    return queued


def outbox(
    ledger: Ledger,
    senders: Mapping[str, Sender],
    policies: Mapping[str, ChannelPolicy],
    clock: Clock,
    on_outcome: OnOutcome | None = None,
    failpoints: Failpoints | None = None,
) -> NotificationOutbox:
    return NotificationOutbox(
        ledger, senders, policies, clock, BACKOFF, on_outcome, failpoints=failpoints
    )


PUBLIC = Policy(include_private=False, expire_after=timedelta(hours=6))
PRIVATE_OK = Policy(include_private=True, expire_after=timedelta(hours=6))
