"""The daemon's digest jobs: each digest on its cron, and the outbox every 30 seconds.

Owned by the daemon (automations/daemon.py), which hands it the scheduler, the
stop event and its ledger check. Digests have a lock of their own, apart from
the rule cycles': a slow or silent SMTP server (up to smtp.timeout_seconds per
attempt) must not hold back an escalation; the ledger and client are
thread-safe. ``digests`` is replaced by a reload, under that lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from operator import methodcaller
from typing import TYPE_CHECKING

from automations.clock import host_now
from automations.errors import AutomationsError

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from automations.digest.service import Digests
    from automations.ledger import Ledger

log = logging.getLogger(__name__)

OUTBOX_EVERY = timedelta(seconds=30)  # how often queued digests are retried and schedules checked


class DigestJobs:
    """Schedules the digests' jobs and runs each one at a time, never after a stop."""

    def __init__(
        self,
        digests: Digests | None,
        ledger: Ledger,
        scheduler: BaseScheduler,
        stopping: threading.Event,
        ledger_intact: Callable[[], bool],
    ) -> None:
        """``ledger_intact``: the daemon's check, False (and the daemon stopping) once the
        ledger file was deleted or replaced."""
        self.digests = digests
        self.ledger = ledger
        self.scheduler = scheduler
        self.stopping = stopping
        self.ledger_intact = ledger_intact
        self.lock = threading.Lock()

    def add_jobs(self) -> None:
        """Each digest on its own cron (its grace as misfire grace), and the outbox every 30s.

        The outbox job retries failed sends and also queues any digest whose
        occurrence is due but missing (e.g. the host slept through the cron). Its
        first run is at once, in a scheduler thread: at start-up a digest missed
        while down is queued and queued ones are retried, beside the first rule
        cycles (a silent SMTP server must not hold them back).
        """
        if self.digests is None:
            return
        from apscheduler.triggers.interval import IntervalTrigger

        for name in self.digests.names():
            job = self.digests.job(name)
            self.scheduler.add_job(
                self.run_scheduled,
                job.schedule.trigger,
                id=f"digest {name}",
                name=f"digest {name}",
                args=(name,),
                misfire_grace_time=int(job.options.catch_up_grace.total_seconds()),
            )
        self.scheduler.add_job(
            self.run_outbox,
            IntervalTrigger(seconds=int(OUTBOX_EVERY.total_seconds())),
            id="digest outbox",
            name="digest outbox",
            next_run_time=host_now(),
        )

    def replace_jobs(self) -> None:
        """After a reload: every digest job rebuilt. Should a digest's time pass during the
        swap, the outbox job queues it (it sends what is due but missing)."""
        for job in self.scheduler.get_jobs():
            if job.id.startswith("digest "):
                job.remove()
        self.add_jobs()

    def run_scheduled(self, name: str) -> None:
        self._work(f"digest {name}", methodcaller("run_scheduled", name), name)

    def run_outbox(self) -> None:
        self._work("digest outbox", methodcaller("tick"))

    def send_now(self) -> None:
        """Every enabled digest now, through the outbox (the demo: after its first cycle)."""
        if self.digests is None:
            return
        for name in self.digests.names():
            self._work(f"digest {name}", methodcaller("send_now", name), name)

    def describe(self) -> str:
        """The enabled digests and their times, for the daemon's start and reload lines."""
        if self.digests is None:
            return ""
        return (
            "; ".join(
                f"{name} at {job.options.cron} {job.options.timezone}"
                for name, job in self.digests.jobs.items()
                if job.options.enabled
            )
            or "none enabled"
        )

    def _work(self, label: str, work: Callable[[Digests], object], name: str | None = None) -> None:
        """One digest job at a time, never after a stop; its errors are logged, not raised.

        The digests are looked up under the lock: a job that fired during a reload
        runs on the new config, or not at all if its digest is gone.
        """
        from automations.pause import digests_paused

        with self.lock:
            digests = self.digests
            if self.stopping.is_set() or digests is None or name not in (None, *digests.jobs):
                return
            if not self.ledger_intact():
                return
            try:
                if digests_paused(self.ledger, label, quiet=name is None):
                    return
                work(digests)
            except AutomationsError as exc:
                log.error("%s: %s", label, exc)
