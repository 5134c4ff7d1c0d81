"""The daemon's digest jobs: each digest on its cron, and the outbox every 30 seconds.

Owned by the daemon (automations/daemon.py), which hands it its side (job_host.py:
the scheduler, the ledger, whether it may still run). Digests have a lock of their own, apart from
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
from automations.job_host import JobHost

if TYPE_CHECKING:
    from automations.digest.service import Digests

log = logging.getLogger(__name__)

OUTBOX_EVERY = timedelta(seconds=30)  # how often queued digests are retried and schedules checked


class DigestJobs:
    """Schedules the digests' jobs and runs each one at a time, never after a stop."""

    def __init__(self, digests: Digests | None, host: JobHost) -> None:
        self.digests = digests
        self.host = host
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
            self.host.scheduler.add_job(
                self.run_scheduled,
                job.schedule.trigger,
                id=f"digest {name}",
                name=f"digest {name}",
                args=(name,),
                misfire_grace_time=int(job.options.catch_up_grace.total_seconds()),
            )
        self.host.scheduler.add_job(
            self.run_outbox,
            IntervalTrigger(seconds=int(OUTBOX_EVERY.total_seconds())),
            id="digest outbox",
            name="digest outbox",
            next_run_time=host_now(),
        )

    def replace_jobs(self) -> None:
        """After a reload: every digest job rebuilt. Should a digest's time pass during the
        swap, the outbox job queues it (it sends what is due but missing)."""
        for job in self.host.scheduler.get_jobs():
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
            if digests is None or name not in (None, *digests.jobs) or not self.host.may_run():
                return
            try:
                if digests_paused(self.host.ledger, label, quiet=name is None):
                    return
                work(digests)
            except AutomationsError as exc:
                log.error("%s: %s", label, exc)
