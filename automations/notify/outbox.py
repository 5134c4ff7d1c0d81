"""Delivering queued notifications: each (event, channel) once, as far as the receiver can tell.

1. **Queued with the action.** ``mark_applied`` / ``mark_reconciled`` insert one
   row per (event key, channel) in the transaction that records the action
   (ledger/notifications.py): an applied action always has its rows, and
   recording it twice adds none.
2. **Claim, send, record.** A sender claims a due row in one UPDATE (*sending*,
   its owner, a lease, the attempt counted), so of two senders (threads or
   processes) only one sends it; it calls the channel's ``Sender`` with
   ``key`` = the row's event key, then records the outcome.
3. **Retry with backoff.** ``NotifyRetryable`` puts the row back to *queued* at
   now + backoff (doubling, capped); ``NotifyRejected`` marks it *failed*; a row
   not sent within its channel's ``expire_after`` of being queued is *expired*
   (a page hours late is noise). A channel no longer in the config fails its rows.
4. **max_per_hour.** A channel that sent that many in the last hour (rolling)
   gets no more: further rows are *held*, never sent. Once it has room again,
   ONE summary notice (``summary/<channel>/<first held id>``) says how many
   were held back and since when, and the held rows become *summarised*.
5. **The one duplicate.** A crash (kill -9, power cut) after the receiver took
   the notification and before the ledger recorded it leaves the row *sending*:
   it is sent again, with the same key, once its lease runs out (at once when
   the crashed process is provably gone, see ``owners.holder_gone``). Each such
   crash can repeat one notification once; receivers de-duplicate on the key
   (the webhook-id, the idempotency key). No other path sends a row twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from automations.backoff import Backoff
from automations.clock import rfc3339
from automations.durations import format_duration
from automations.errors import NotifyRejected, NotifyRetryable
from automations.failpoints import Failpoints
from automations.leadership import Guard, still_leading
from automations.ledger import HeldBatch, Ledger, Notification, NotificationState
from automations.ledger.owners import LEASE, lease_holder
from automations.logs import notification_fields
from automations.notify.notice import SUMMARY, Notice
from automations.notify.sender import INCIDENT_UPDATE_CHANNEL, ChannelPolicy, Sender
from automations.notify.spec import INCIDENT_UPDATE_POLICY

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
OnOutcome = Callable[[str, str], None]  # (channel, outcome)

WINDOW = timedelta(hours=1)  # max_per_hour counts the sends of the last (rolling) hour
# Outcomes passed to on_outcome, for automations_notifications_total{channel,outcome}.
OUTCOMES = ("sent", "retry", "failed", "expired", "held")


@dataclass(frozen=True)
class NoticeDelivery:
    """What happened to one notification on one attempt."""

    id: int
    event_key: str
    channel: str
    outcome: str  # one of OUTCOMES
    attempts: int
    error: str | None = None
    next_attempt_at: datetime | None = None


class NotificationOutbox:
    """Delivers due notifications through each channel's Sender; one sender per row."""

    # The daemon's stop event: once set, no further row is sent (they stay queued).
    stopping: threading.Event | None = None
    # The leader guard (automations/leadership.py), asked before each row is claimed.
    may_act: Guard | None = None

    def __init__(
        self,
        ledger: Ledger,
        senders: Mapping[str, Sender],
        policies: Mapping[str, ChannelPolicy],
        clock: Clock,
        backoff: Backoff,
        on_outcome: OnOutcome | None = None,
        *,
        lease: timedelta = LEASE,
        failpoints: Failpoints | None = None,
    ) -> None:
        self.ledger = ledger
        self.senders = dict(senders)
        self.policies = dict(policies)
        self.clock = clock
        self.backoff = backoff
        self.on_outcome = on_outcome
        self.lease = lease  # outlasts the slowest send (an escalation's API retries)
        self.owner = lease_holder()
        self.failpoints = failpoints or Failpoints()  # tests crash at after_notify_send
        self._sending = threading.Lock()
        # Channels holding rows back (read from the ledger each pass): a hold is logged as a
        # warning only when it starts a streak, not for every row held.
        self._holding: set[str] = set()

    def deliver_due(self) -> list[NoticeDelivery]:
        """Queue the summaries that are due, then try every due row once, summaries first.

        A row another sender claims first is skipped: it is that sender's to report.
        """
        with self._sending:
            self._holding = self._summarise_held()
            due = self.ledger.notifications.due(now=self.clock())
            due.sort(key=lambda item: not _is_summary(item))  # stable: oldest first otherwise
            deliveries = []
            for item in due:
                if self.stopping is not None and self.stopping.is_set():
                    log.info("notifications: stopping; the rest stays queued for the next start")
                    break
                if not still_leading(self.may_act, "notifications"):
                    break
                now = self.clock()
                claimed = self.ledger.notifications.claim(
                    item, owner=self.owner, now=now, lease_until=now + self.lease
                )
                if claimed is not None:
                    deliveries.append(self._attempt(claimed))
            return deliveries

    def policy(self, channel: str) -> ChannelPolicy | None:
        """The channel's policy; the incident timeline has a built-in one."""
        policy = self.policies.get(channel)
        if policy is None and channel == INCIDENT_UPDATE_CHANNEL:
            return INCIDENT_UPDATE_POLICY
        return policy

    # -- one attempt ------------------------------------------------------------------------

    def _attempt(self, item: Notification) -> NoticeDelivery:
        """Check the claimed row against its channel (configured, not expired, room this hour),
        then send it and record what the receiver said."""
        assert item.notice is not None  # quarantined rows are never due
        sender, policy = self.senders.get(item.channel), self.policy(item.channel)
        if sender is None or policy is None:
            error = (
                f"channel {item.channel!r} is no longer configured (not in [[channels]]): not sent"
            )
            return self._final(item, NotificationState.FAILED, error, logging.ERROR)
        now = self.clock()
        expires_at = item.created_at + policy.expire_after
        if now >= expires_at:
            return self._expire(item, policy, sends=item.attempts - 1)  # this claim sent nothing
        if not _is_summary(item) and self._full(item.channel, policy, now):
            return self._hold(item, policy)
        try:
            sender.send(item.notice, key=item.event_key)
        except NotifyRejected as exc:
            return self._final(
                item, NotificationState.FAILED, f"refused: {exc}", logging.ERROR, "not retried"
            )
        except NotifyRetryable as exc:
            return self._retry(item, policy, str(exc))
        except Exception as exc:
            # Not one of the channel's own errors: a bug. Only its type is kept: its text may
            # carry a channel's URL, and with it a secret.
            error = f"the {item.channel} sender failed unexpectedly ({type(exc).__name__})"
            return self._retry(item, policy, error)
        # The one window where a crash duplicates: the receiver has it, the ledger does not.
        self.failpoints.hit("after_notify_send")
        self.ledger.notifications.mark_sent(item.id, owner=self.owner, now=self.clock())
        self._tell(item.channel, "sent")
        log.info(
            "notification %s sent to %s (attempt %d)",
            item.event_key,
            item.channel,
            item.attempts,
            extra=notification_fields(item, "sent"),
        )
        return NoticeDelivery(item.id, item.event_key, item.channel, "sent", item.attempts)

    def _full(self, channel: str, policy: ChannelPolicy, now: datetime) -> bool:
        """Whether the channel sent its ``max_per_hour`` in the last hour."""
        limit = policy.max_per_hour
        return (
            limit is not None
            and self.ledger.notifications.sent_since(channel, now - WINDOW, up_to=limit) >= limit
        )

    def _retry(self, item: Notification, policy: ChannelPolicy, error: str) -> NoticeDelivery:
        """Queued again after the backoff; expired instead when that is past its expiry.

        Logged at the row's first failure only (and when it finally goes or expires).
        """
        retry_at = self.clock() + self.backoff.after(item.attempts)
        if retry_at >= item.created_at + policy.expire_after:
            return self._expire(item, policy, item.attempts, error)
        self.ledger.notifications.mark_retry(
            item.id, owner=self.owner, error=error, next_attempt_at=retry_at
        )
        self._tell(item.channel, "retry")
        level = logging.WARNING if item.last_error is None else logging.DEBUG
        log.log(
            level,
            "notification %s to %s: attempt %d failed, retrying with backoff until it is sent "
            "or expires (next at %s): %s",
            item.event_key,
            item.channel,
            item.attempts,
            rfc3339(retry_at),
            error,
            extra=notification_fields(item, "retry", error),
        )
        return NoticeDelivery(
            item.id, item.event_key, item.channel, "retry", item.attempts, error, retry_at
        )

    def _expire(
        self, item: Notification, policy: ChannelPolicy, sends: int, error: str | None = None
    ) -> NoticeDelivery:
        last = error or item.last_error or "none"
        within = format_duration(policy.expire_after)
        text = (
            f"not delivered within expire_after ({within}) of being queued, "
            f"after {sends} attempt{'s' if sends != 1 else ''}; last error: {last}"
        )
        return self._final(item, NotificationState.EXPIRED, text, logging.ERROR)

    def _hold(self, item: Notification, policy: ChannelPolicy) -> NoticeDelivery:
        """Over ``max_per_hour``: never sent; counted in the channel's next summary."""
        error = (
            f"channel {item.channel} sent its max_per_hour = {policy.max_per_hour} in the last "
            "hour: not sent, counted in the summary that follows"
        )
        first = item.channel not in self._holding
        self._holding.add(item.channel)
        level = logging.WARNING if first else logging.DEBUG  # once per streak, not per row
        return self._final(item, NotificationState.HELD, error, level)

    def _final(
        self,
        item: Notification,
        state: NotificationState,
        error: str,
        level: int,
        note: str = "",
    ) -> NoticeDelivery:
        """FAILED, EXPIRED or HELD: recorded with the reason, logged, counted."""
        self.ledger.notifications.mark(item.id, state, owner=self.owner, error=error)
        outcome = state.value
        self._tell(item.channel, outcome)
        log.log(
            level,
            "notification %s to %s %s%s: %s",
            item.event_key,
            item.channel,
            outcome,
            f", {note}" if note else "",
            error,
            extra=notification_fields(item, outcome, error),
        )
        return NoticeDelivery(item.id, item.event_key, item.channel, outcome, item.attempts, error)

    # -- max_per_hour summaries ---------------------------------------------------------------

    def _summarise_held(self) -> set[str]:
        """For each channel with held rows and room again: queue ONE summary saying how many.
        Returns the channels whose rows stay held."""
        holding = set()
        for batch in self.ledger.notifications.held():
            holding.add(batch.channel)
            policy = self.policy(batch.channel)
            if batch.channel not in self.senders or policy is None:
                continue  # its rows stay held; a channel back in the config gets its summary
            now = self.clock()
            if self._full(batch.channel, policy, now):
                continue
            summary = summary_notice(batch, policy, now)
            if self.ledger.notifications.summarise(batch, summary, now=now):
                holding.discard(batch.channel)
                log.warning(
                    "channel %s: %d notifications were held back by max_per_hour since %s; "
                    "one summary queued (%s)",
                    batch.channel,
                    batch.count,
                    rfc3339(batch.since),
                    summary.event_key,
                )
        return holding

    def _tell(self, channel: str, outcome: str) -> None:
        """Count it for /metrics; a failing counter never stops a delivery."""
        if self.on_outcome is None:
            return
        try:
            self.on_outcome(channel, outcome)
        except Exception:
            log.exception("notifications: the outcome listener failed")


def summary_notice(batch: HeldBatch, policy: ChannelPolicy, now: datetime) -> Notice:
    """The one notice that stands for a channel's held rows; its key is unique per batch."""
    limit = f" = {policy.max_per_hour}" if policy.max_per_hour is not None else ""
    return Notice(
        event_key=f"summary/{batch.channel}/{batch.first_id}",
        type=SUMMARY,
        rule="",
        action="summary",
        reason=(
            f"{batch.count} notification{'s' if batch.count != 1 else ''} held back by "
            f"max_per_hour{limit} since {rfc3339(batch.since)}"
        ),
        occurred_at=now,
        details={"held_back": batch.count, "since": rfc3339(batch.since)},
    )


def _is_summary(item: Notification) -> bool:
    return item.notice is not None and item.notice.type == SUMMARY
