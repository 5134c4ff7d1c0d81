"""The daemon's notification job: due notifications every few seconds, and at once on a wake.

Owned by the daemon (automations/daemon.py), which hands it its side (job_host.py:
the scheduler, the ledger, whether it may still run). It has its own scheduler job and lock, never
inside a cycle's, so neither waits for the other: a stuck receiver (up to one
lease) must not hold back a cycle, and a slow SMTP server must not hold back a
page. ``deliver_notifications`` is the one pass, shared with ``once``.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from automations.clock import host_now
from automations.errors import AutomationsError
from automations.job_host import JobHost

if TYPE_CHECKING:
    from automations.ledger import Ledger
    from automations.notify.outbox import NoticeDelivery, NotificationOutbox

log = logging.getLogger(__name__)

NOTIFY_EVERY = timedelta(seconds=5)  # how often due notifications are sent: a page must not wait


def deliver_notifications(
    ledger: Ledger, outbox: NotificationOutbox | None
) -> list[NoticeDelivery]:
    """Send what is due (the daemon's job, and ``once`` before it exits); nothing while paused:
    the rows stay queued, and go after ``automations resume`` unless they expired."""
    from automations.pause import digests_paused

    if outbox is None or digests_paused(ledger, "notifications", quiet=True):
        return []
    return outbox.deliver_due()


class NotificationJobs:
    """Schedules the delivery pass and runs one at a time, never after a stop."""

    def __init__(self, outbox: NotificationOutbox | None, host: JobHost) -> None:
        self.outbox = outbox
        self.host = host
        self.lock = threading.Lock()
        self._wake_pending = threading.Event()  # a pass asked for by wake waits

    def add_job(self) -> None:
        """Due notifications every few seconds, from start-up on."""
        if self.outbox is None:
            return
        from apscheduler.triggers.interval import IntervalTrigger

        self.host.scheduler.add_job(
            self.run,
            IntervalTrigger(seconds=int(NOTIFY_EVERY.total_seconds())),
            id="notifications",
            name="notifications",
            next_run_time=host_now(),
        )

    def wake(self, applied: int) -> None:
        """Actions were just recorded (with their notifications, in the same transaction): send
        them now, in a thread of their own, rather than at the next pass up to NOTIFY_EVERY
        later. Wakes that come while one is still waiting for the lock are folded into it."""
        if self.outbox is None or not applied or self._wake_pending.is_set():
            return
        self._wake_pending.set()
        threading.Thread(target=self.run, name="notifications-now", daemon=True).start()

    def run(self) -> None:
        """One delivery pass, never after a stop; its errors are logged, not raised."""
        with self.lock:
            self._wake_pending.clear()  # this pass sees every row recorded before the wake
            if not self.host.may_run():
                return
            try:
                deliver_notifications(self.host.ledger, self.outbox)
            except AutomationsError as exc:
                log.error("notifications: %s", exc)
