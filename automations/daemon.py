"""APScheduler wiring: one job per distinct schedule, signals, one log line per cycle.

Rules with the same schedule run in one job, so they share one poll. Job
defaults are set on purpose (coalesce, one instance, misfire grace, jitter),
and a skipped or missed run becomes a log line rather than silence.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from automations.clock import host_now
from automations.durations import format_duration
from automations.engine import CycleReport
from automations.rules.base import AnyRule
from automations.runtime import Runtime

if TYPE_CHECKING:
    from automations.digest.service import Digests
    from automations.health_server import HealthServer
    from automations.metrics import Metrics

log = logging.getLogger("automations.daemon")

MISFIRE_GRACE = timedelta(minutes=5)
OUTBOX_EVERY = timedelta(seconds=30)  # how often queued digests are retried and schedules checked


def schedule_key(rule: AnyRule) -> str:
    """A readable, stable job name for the rule's schedule."""
    opts = rule.options
    if opts.every is not None:
        return f"every {format_duration(opts.every)}"
    return f"cron {opts.cron} {opts.timezone}"


def group_by_schedule(rules: Sequence[AnyRule]) -> dict[str, list[AnyRule]]:
    groups: dict[str, list[AnyRule]] = defaultdict(list)
    for rule in rules:
        groups[schedule_key(rule)].append(rule)
    return dict(groups)


def log_cycle(report: CycleReport) -> None:
    level = logging.INFO if report.ok else logging.ERROR
    log.log(level, report.line(), extra={"cycle": report.summary()})


def run_once(runtime: Runtime) -> list[CycleReport]:
    """Every rule group once (the cron-job mode)."""
    reports = []
    for name, rules in group_by_schedule(runtime.rules).items():
        report = runtime.engine.run_cycle(rules, name)
        log_cycle(report)
        reports.append(report)
    return reports


class Daemon:
    """Runs the rule groups on their schedules until SIGTERM/SIGINT."""

    def __init__(
        self, runtime: Runtime, *, jitter_seconds: int = 5, digests: Digests | None = None
    ) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.runtime = runtime
        if digests is None and runtime.config.digests:
            from automations.digest.service import digests_for

            digests = digests_for(runtime)
        self.digests = digests
        self.jitter_seconds = jitter_seconds
        self.stopping = threading.Event()
        self.scheduler = BackgroundScheduler(
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(MISFIRE_GRACE.total_seconds()),
            },
            timezone="UTC",
        )
        self._lock = threading.Lock()  # rule cycles share one client and ledger: one at a time
        # Digests have their own lock: a slow or silent SMTP server (up to smtp.timeout_seconds
        # per attempt) must not hold back an escalation. Ledger and client are thread-safe.
        self._digest_lock = threading.Lock()
        self.metrics: Metrics | None = None
        self.health_server: HealthServer | None = None
        self.first_cycle_done = threading.Event()

    def _job(self, name: str, rules: list[AnyRule]) -> None:
        with self._lock:
            if self.stopping.is_set():
                return
            report = self.runtime.engine.run_cycle(rules, name)
            log_cycle(report)
            if self.metrics is not None:
                self.metrics.observe_cycle(report)
        self.first_cycle_done.set()

    def add_jobs(self) -> None:
        """One job per schedule; interval schedules also run once right away."""
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        for name, rules in group_by_schedule(self.runtime.rules).items():
            opts = rules[0].options
            trigger: Any
            first_run: datetime | None = None
            if opts.every is not None:
                seconds = int(opts.every.total_seconds())
                jitter = min(self.jitter_seconds, seconds // 10) or None
                trigger = IntervalTrigger(seconds=seconds, jitter=jitter)
                first_run = host_now()
            else:
                trigger = CronTrigger.from_crontab(
                    opts.cron, timezone=opts.timezone, jitter=self.jitter_seconds or None
                )
            # APScheduler reads an explicit next_run_time=None as "paused": pass it only when set.
            start = {"next_run_time": first_run} if first_run else {}
            self.scheduler.add_job(
                self._job, trigger, id=name, name=name, args=(name, rules), **start
            )
        self.add_digest_jobs()

    def add_digest_jobs(self) -> None:
        """Each digest on its own cron (its grace as misfire grace), and the outbox every 30s.

        The outbox job retries failed sends and also queues any digest whose
        occurrence is due but missing (e.g. the host slept through the cron).
        """
        if self.digests is None:
            return
        from apscheduler.triggers.interval import IntervalTrigger

        for name in self.digests.names():
            job = self.digests.job(name)
            self.scheduler.add_job(
                self._digest_job,
                job.schedule.trigger,
                id=f"digest {name}",
                name=f"digest {name}",
                args=(name,),
                misfire_grace_time=int(job.options.catch_up_grace.total_seconds()),
            )
        self.scheduler.add_job(
            self._outbox_job,
            IntervalTrigger(seconds=int(OUTBOX_EVERY.total_seconds())),
            id="digest outbox",
            name="digest outbox",
        )

    def _digest_job(self, name: str) -> None:
        assert self.digests is not None
        self._digest_work(f"digest {name}", functools.partial(self.digests.run_scheduled, name))

    def _outbox_job(self) -> None:
        assert self.digests is not None
        self._digest_work("digest outbox", self.digests.tick)

    def send_digests_now(self) -> None:
        """Every enabled digest now, through the outbox (the demo: after its first cycle)."""
        if self.digests is None:
            return
        for name in self.digests.names():
            self._digest_work(f"digest {name}", functools.partial(self.digests.send_now, name))

    def _digest_work(self, label: str, work: Callable[[], object]) -> None:
        """One digest job at a time, never after a stop; its errors are logged, not raised."""
        from automations.errors import AutomationsError

        with self._digest_lock:
            if self.stopping.is_set():
                return
            try:
                work()
            except AutomationsError as exc:
                log.error("%s: %s", label, exc)

    def _on_event(self, event: Any) -> None:
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED

        if event.code == EVENT_JOB_MISSED:
            log.warning(
                "schedule %s: a run was missed (daemon busy or asleep); coalesced", event.job_id
            )
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            log.warning("schedule %s: skipped, the previous cycle is still running", event.job_id)

    def serve_health(self) -> None:
        """Start /healthz and /metrics when ``[server] enabled``; nothing is imported otherwise."""
        settings = self.runtime.config.server
        if not settings.enabled:
            return
        from automations.health_server import HealthServer
        from automations.metrics import Metrics, default_stale_after

        stale_after = settings.stale_after or default_stale_after(self.runtime.rules)
        self.metrics = Metrics(stale_after=stale_after, expects_cycles=bool(self.runtime.rules))
        self.metrics.watch_client(self.runtime.client)
        if self.digests is not None:
            from automations.digest import events

            events.DELIVERY_LISTENERS.append(self.metrics.observe_digest)
            events.FAILURE_LISTENERS.append(self.metrics.observe_digest_failure)
        self.health_server = HealthServer(
            self.metrics, host=settings.host, port=settings.port
        ).start()

    def stop_health(self) -> None:
        if self.health_server is not None:
            self.health_server.stop()
            self.health_server = None
        if self.metrics is not None and self.digests is not None:
            from automations.digest import events

            events.DELIVERY_LISTENERS.remove(self.metrics.observe_digest)
            events.FAILURE_LISTENERS.remove(self.metrics.observe_digest_failure)

    def run(self) -> None:
        """Block until a signal; the current cycle finishes before exit."""
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED

        self.serve_health()

        settled = self.runtime.engine.reconcile()
        if settled:
            log.warning(
                "start-up: settled %d unconfirmed events from an interrupted run", len(settled)
            )
        if self.digests is not None:
            # A digest missed while down is queued once now; queued ones are retried.
            self._outbox_job()
        self.add_jobs()
        self.scheduler.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)

        def stop(signum: int, _frame: object) -> None:
            log.info(
                "received %s: finishing the current cycle, then exiting",
                signal.Signals(signum).name,
            )
            self.stopping.set()

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        groups = group_by_schedule(self.runtime.rules)
        log.info(
            "daemon started: %d rules in %d schedules (%s)",
            len(self.runtime.rules),
            len(groups),
            "; ".join(f"{k}: {', '.join(r.name for r in v)}" for k, v in groups.items()),
        )
        if self.digests is not None:
            log.info(
                "digests: %s",
                "; ".join(
                    f"{name} at {job.options.cron} {job.options.timezone}"
                    for name, job in self.digests.jobs.items()
                    if job.options.enabled
                )
                or "none enabled",
            )
        self.scheduler.start()
        try:
            while not self.stopping.wait(0.5):
                pass
        finally:
            self.scheduler.shutdown(wait=True)
            self.stop_health()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            log.info("daemon stopped")
