"""Exactly-once delivery on top of the ledger's outbox table.

1. **Enqueue once.** A (digest, period) is rendered and stored as the exact
   message bytes, under a unique key: a second render for the same period,
   from another thread or process, is refused by SQLite and thrown away.
2. **Claim, send, then confirm.** A sender claims an item in one UPDATE
   (*sending*, its owner, a lease, the attempt counted) before SMTP, so of two
   senders (the daemon and ``digest send``) only one sends. Each recipient the
   server accepts is recorded as its transaction ends; the item is *sent* once
   every recipient accepted it or refused it for good (5xx, logged and kept on
   the item). Nothing ever sends it again to a recipient who has it.
3. **Retry with backoff.** A transient failure, or recipients refused for now
   (4xx, e.g. ``452`` after the server's 100th RCPT), puts it back to *pending*
   with ``next_attempt_at`` = now + backoff (doubling, capped), for the
   recipients still without it; a permanent failure of the message marks it
   *failed*; one still unsent at ``expires_at`` is *expired*.
4. **Restart-safe.** All of that state is in SQLite, so a new process finds
   pending items and retries them. An item left *sending* by a crash is claimed
   again once its lease (``smtp.timeout_seconds``, which bounds the whole send,
   plus a margin) runs out: if the crash came after the server accepted the
   DATA and before the ledger recorded it, that is the one duplicate SMTP
   cannot rule out (same Message-ID, so clients can fold it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from automations.backoff import Backoff
from automations.digest.delivery import Mailer, Outcome
from automations.digest.events import DigestEvents
from automations.errors import DeliveryError, DeliveryRejected, DeliveryRetryable
from automations.failpoints import Failpoints
from automations.leadership import Guard, still_leading
from automations.ledger import Ledger, OutboxItem, OutboxState
from automations.ledger.owners import lease_holder

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# A lease outlasts the longest send (smtp.timeout_seconds) by this much: the ledger writes
# around it, a busy SQLite. Only a crashed sender's item waits for it to run out.
LEASE_MARGIN = timedelta(seconds=60)
WAIT_POLL = 0.1  # seconds between looks at an item another process is sending


@dataclass(frozen=True)
class Delivery:
    """What happened to one outbox item on one attempt."""

    digest: str
    period: str
    outcome: OutboxState  # SENT, PENDING (will retry) or FAILED
    attempts: int
    error: str | None = None
    next_attempt_at: datetime | None = None


class DigestOutbox:
    """Queues rendered digests and delivers due ones; one sender per item, across processes."""

    # The daemon's stop event: once set, no further item is sent (they stay queued).
    stopping: threading.Event | None = None
    # The leader guard (automations/leadership.py), asked before each item is claimed.
    may_act: Guard | None = None

    def __init__(
        self,
        ledger: Ledger,
        mailer: Mailer | None,
        backoff: Backoff,
        clock: Clock,
        *,
        events: DigestEvents | None = None,
        failpoints: Failpoints | None = None,
    ):
        self.ledger = ledger
        self.mailer = mailer
        self.backoff = backoff
        self.clock = clock
        self.owner = lease_holder()
        seconds = mailer.settings.timeout_seconds if mailer is not None else 0.0
        self.lease = timedelta(seconds=seconds) + LEASE_MARGIN
        self.events = events or DigestEvents()  # each attempt's outcome: metrics listen
        self.failpoints = failpoints or Failpoints()  # tests crash at after_smtp
        self._sending = threading.Lock()

    def enqueue(
        self,
        *,
        digest: str,
        period: str,
        subject: str,
        recipients: list[str],
        message: bytes,
        message_id: str,
        expire_after: timedelta,
    ) -> bool:
        """Store the message for (digest, period); False if one is already there."""
        now = self.clock()
        return self.ledger.outbox.enqueue(
            digest=digest,
            period=period,
            subject=subject,
            recipients=recipients,
            message=message,
            message_id=message_id,
            expires_at=now + expire_after,
            now=now,
        )

    def deliver_due(self) -> list[Delivery]:
        """Expire what is too old, then try every due item once, oldest first.

        An item another sender claims first is skipped: it is that sender's to report.
        """
        with self._sending:
            now = self.clock()
            for item in self.ledger.outbox.expire(now=now):
                log.error(
                    "digest %s for %s expired unsent after %d attempts; last error: %s",
                    item.digest,
                    item.period,
                    item.attempts,
                    item.last_error,
                )
            deliveries = []
            for due in self.ledger.outbox.due(now=now):
                if self.stopping is not None and self.stopping.is_set():
                    log.info("digest outbox: stopping; the rest stays queued for the next start")
                    break
                if not still_leading(self.may_act, "digest outbox"):
                    break
                claimed = self._claim(due.id)
                if claimed is not None:
                    deliveries.append(self._attempt(claimed))
            return deliveries

    def deliver(self, digest: str, period: str) -> Delivery | None:
        """Try one item now (for ``digest send``); None if it is already final.

        If another process is sending it, wait for that attempt and report its outcome.
        """
        with self._sending:
            item = self.ledger.outbox.find(digest, period)
            if item is None or item.state not in (OutboxState.PENDING, OutboxState.SENDING):
                return None
            claimed = self._claim(item.id)
            if claimed is not None:
                return self._attempt(claimed)
            return self._wait_for_other(item)

    def _claim(self, item_id: int) -> OutboxItem | None:
        now = self.clock()
        return self.ledger.outbox.claim(
            item_id, owner=self.owner, now=now, lease_until=now + self.lease
        )

    def _wait_for_other(self, item: OutboxItem) -> Delivery:
        """The outcome of another sender's attempt on ``item``, waiting up to one lease."""
        give_up = time.monotonic() + self.lease.total_seconds()
        current = item
        while time.monotonic() < give_up:
            current = self.ledger.outbox.get(item.id) or current
            if current.state != OutboxState.SENDING:
                return Delivery(
                    current.digest,
                    current.period,
                    current.state,
                    current.attempts,
                    current.last_error,
                    current.next_attempt_at if current.state == OutboxState.PENDING else None,
                )
            time.sleep(WAIT_POLL)
        return Delivery(
            current.digest,
            current.period,
            OutboxState.PENDING,
            current.attempts,
            f"{current.owner or 'another process'} is sending it",
        )

    def _attempt(self, item: OutboxItem) -> Delivery:
        """One attempt on a claimed item: the recipients still without it, then record."""
        if self.mailer is None:
            raise DeliveryError("no [smtp] settings: cannot send digests")
        outcome = Outcome()
        try:
            if item.remaining:
                record = partial(self._record, item)
                outcome = self.mailer.deliver(item.message, item.remaining, record)
        except DeliveryRejected as exc:
            return self._failed(item, str(exc))
        except DeliveryRetryable as exc:
            return self._retry(item, str(exc))
        done = self.ledger.outbox.get(item.id)
        assert done is not None  # we hold its lease
        where = f"SMTP {self.mailer.where}"
        if outcome.never:  # reported once, when refused; kept on the item
            log.error(
                "digest %s for %s: %s refused for good, not retried: %s",
                item.digest,
                item.period,
                where,
                outcome.describe_never(),
            )
        refused = Outcome(never=done.refused).describe()
        if done.remaining:
            later = {r: outcome.later.get(r, "not sent") for r in done.remaining}
            return self._retry(item, f"{where} refused for now: {Outcome(later=later).describe()}")
        if not done.accepted:
            return self._failed(item, f"{where}: every recipient refused: {refused}")
        note = f"{where} refused for good: {refused}" if done.refused else None
        self.ledger.outbox.mark_sent(item.id, owner=self.owner, now=self.clock(), note=note)
        self.events.on_delivery(item.digest, "sent")
        log.info(
            "digest %s for %s sent to %d recipient(s) (attempt %d)",
            item.digest,
            item.period,
            len(done.accepted),
            item.attempts,
        )
        return Delivery(item.digest, item.period, OutboxState.SENT, item.attempts, note)

    def _record(self, item: OutboxItem, step: Outcome) -> None:
        """A transaction ended: who has the message now, who never will."""
        if step.accepted:
            # The one window where a crash duplicates: accepted by SMTP, not yet recorded.
            self.failpoints.hit("after_smtp")
        self.ledger.outbox.record_recipients(
            item.id, owner=self.owner, accepted=list(step.accepted), refused=step.never
        )

    def _retry(self, item: OutboxItem, error: str) -> Delivery:
        retry_at = self.clock() + self.backoff.after(item.attempts)
        self.ledger.outbox.mark_retry(
            item.id, owner=self.owner, error=error, next_attempt_at=retry_at
        )
        self.events.on_delivery(item.digest, "failed")
        log.warning(
            "digest %s for %s: attempt %d failed, retrying at %s: %s",
            item.digest,
            item.period,
            item.attempts,
            retry_at.isoformat(timespec="seconds"),
            error,
        )
        return Delivery(
            item.digest, item.period, OutboxState.PENDING, item.attempts, error, retry_at
        )

    def _failed(self, item: OutboxItem, error: str) -> Delivery:
        self.ledger.outbox.mark_failed(item.id, owner=self.owner, error=error)
        self.events.on_delivery(item.digest, "failed")
        log.error("digest %s for %s refused, not retried: %s", item.digest, item.period, error)
        return Delivery(item.digest, item.period, OutboxState.FAILED, item.attempts, error)
