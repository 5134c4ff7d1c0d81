"""Exactly-once delivery on top of the ledger's outbox table.

1. **Enqueue once.** A (digest, period) is rendered and stored as the exact
   message bytes, under a unique key: a second render for the same period,
   from another thread or process, is refused by SQLite and thrown away.
2. **Send, then confirm.** An item is marked *sending* (attempt counted)
   before SMTP and *sent* after the server accepted it. Nothing else ever
   sends it again once sent.
3. **Retry with backoff.** A transient failure puts it back to *pending* with
   ``next_attempt_at`` = now + backoff (doubling, capped); a permanent one
   marks it *failed*; one still unsent at ``expires_at`` is *expired*.
4. **Restart-safe.** All of that state is in SQLite, so a new process finds
   pending items and retries them. An item left *sending* by a crash is sent
   again: if the crash came after the server accepted the DATA and before the
   ledger was updated, that is the one duplicate SMTP cannot rule out (same
   Message-ID, so clients can fold it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from automations import failpoints
from automations.digest.delivery import DeliveryRejected, Mailer
from automations.digest.events import on_delivery
from automations.errors import DeliveryError
from automations.ledger import Ledger, OutboxItem, OutboxState

log = logging.getLogger("automations.digest")

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Backoff:
    """Retry delays: ``first``, doubling per attempt, never more than ``longest``."""

    first: timedelta
    longest: timedelta

    def after(self, attempts: int) -> timedelta:
        exponent = min(max(attempts - 1, 0), 30)
        delay: timedelta = self.first * (2**exponent)
        return min(delay, self.longest)


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
    """Queues rendered digests and delivers due ones; one sender at a time per process."""

    # The daemon's stop event: once set, no further item is sent (they stay queued).
    stopping: threading.Event | None = None

    def __init__(self, ledger: Ledger, mailer: Mailer | None, backoff: Backoff, clock: Clock):
        self.ledger = ledger
        self.mailer = mailer
        self.backoff = backoff
        self.clock = clock
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
        return self.ledger.outbox_enqueue(
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
        """Expire what is too old, then try every due item once, oldest first."""
        with self._sending:
            now = self.clock()
            for item in self.ledger.outbox_expire(now=now):
                log.error(
                    "digest %s for %s expired unsent after %d attempts; last error: %s",
                    item.digest,
                    item.period,
                    item.attempts,
                    item.last_error,
                )
            deliveries = []
            for item in self.ledger.outbox_due(now=now):
                if self.stopping is not None and self.stopping.is_set():
                    log.info("digest outbox: stopping; the rest stays queued for the next start")
                    break
                deliveries.append(self._attempt(item))
            return deliveries

    def deliver(self, digest: str, period: str) -> Delivery | None:
        """Try one item now if it is still open (for ``digest send``); None if already final."""
        with self._sending:
            item = self.ledger.outbox_find(digest, period)
            if item is None or item.state not in (OutboxState.PENDING, OutboxState.SENDING):
                return None
            return self._attempt(item)

    def _attempt(self, item: OutboxItem) -> Delivery:
        if self.mailer is None:
            raise DeliveryError("no [smtp] settings: cannot send digests")
        attempts = item.attempts + 1
        self.ledger.outbox_mark_sending(item.id)
        try:
            self.mailer.send(item.message, item.recipients)
        except DeliveryRejected as exc:
            self.ledger.outbox_mark_failed(item.id, error=str(exc))
            on_delivery(item.digest, "failed")
            log.error("digest %s for %s refused, not retried: %s", item.digest, item.period, exc)
            return Delivery(item.digest, item.period, OutboxState.FAILED, attempts, str(exc))
        except DeliveryError as exc:
            retry_at = self.clock() + self.backoff.after(attempts)
            self.ledger.outbox_mark_retry(item.id, error=str(exc), next_attempt_at=retry_at)
            on_delivery(item.digest, "failed")
            log.warning(
                "digest %s for %s: attempt %d failed, retrying at %s: %s",
                item.digest,
                item.period,
                attempts,
                retry_at.isoformat(timespec="seconds"),
                exc,
            )
            return Delivery(
                item.digest, item.period, OutboxState.PENDING, attempts, str(exc), retry_at
            )
        # The one window where a crash duplicates: accepted by SMTP, not yet marked sent.
        failpoints.hit("after_smtp")
        self.ledger.outbox_mark_sent(item.id, now=self.clock())
        on_delivery(item.digest, "sent")
        log.info(
            "digest %s for %s sent to %d recipient(s) (attempt %d)",
            item.digest,
            item.period,
            len(item.recipients),
            attempts,
        )
        return Delivery(item.digest, item.period, OutboxState.SENT, attempts)
