"""The daemon's notification job: due notifications every few seconds, and at once on a wake.

Owned by the daemon (automations/daemon.py), which hands it the scheduler, the
stop event and its ledger check. It has its own scheduler job and lock, never
inside a cycle's, so neither waits for the other: a stuck receiver (up to one
lease) must not hold back a cycle, and a slow SMTP server must not hold back a
page. ``deliver_notifications`` is the one pass, shared with ``once``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from automations.clock import host_now
from automations.errors import AutomationsError

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

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

    def __init__(
        self,
        outbox: NotificationOutbox | None,
        ledger: Ledger,
        scheduler: BaseScheduler,
        stopping: threading.Event,
        ledger_intact: Callable[[], bool],
    ) -> None:
        """``ledger_intact``: the daemon's check, False (and the daemon stopping) once the
        ledger file was deleted or replaced."""
        self.outbox = outbox
        self.ledger = ledger
        self.scheduler = scheduler
        self.stopping = stopping
        self.ledger_intact = ledger_intact
        self.lock = threading.Lock()
        self._wake_pending = threading.Event()  # a pass asked for by wake waits

    def add_job(self) -> None:
        """Due notifications every few seconds, from start-up on."""
        if self.outbox is None:
            return
        from apscheduler.triggers.interval import IntervalTrigger

        self.scheduler.add_job(
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
            if self.stopping.is_set() or not self.ledger_intact():
                return
            try:
                deliver_notifications(self.ledger, self.outbox)
            except AutomationsError as exc:
                log.error("notifications: %s", exc)
