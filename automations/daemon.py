"""APScheduler wiring: a job per distinct schedule, signals, reload, leadership, a line per cycle.

Rules with the same schedule run in one job, so they share one poll. Job
defaults are set on purpose (coalesce, one instance, misfire grace, jitter),
and a skipped or missed run becomes a log line rather than silence. Digests, notifications and
/healthz have modules of their own (digest/jobs.py, notify/jobs.py, daemon_health.py).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from automations.cycle_report import CycleReport, IncidentsRun
from automations.digest.jobs import DigestJobs
from automations.errors import AutomationsError, LedgerError, LedgerReplaced
from automations.job_host import JobHost
from automations.leadership import RETRY_EVERY
from automations.ledger.watch import LedgerFile
from automations.notify.jobs import NotificationJobs
from automations.rule_schedules import group_by_schedule, rule_trigger
from automations.rules.base import AnyRule, RuleOptions
from automations.runtime import Runtime, reconcile_at_startup

if TYPE_CHECKING:
    from automations.digest.service import Digests
    from automations.health_server import HealthServer
    from automations.leadership import Election, Leadership
    from automations.metrics import Metrics
    from automations.notify.outbox import NotificationOutbox
    from automations.webhooks.service import WebhookService

log = logging.getLogger(__name__)

MISFIRE_GRACE = timedelta(minutes=5)


def log_cycle(report: CycleReport) -> None:
    level = logging.INFO if report.ok else logging.ERROR
    log.log(level, report.line(), extra={"cycle": report.summary()})


def run_once(runtime: Runtime) -> list[CycleReport]:
    """Every rule group once (the cron-job mode); stops at the first unreachable API."""
    reports = []
    groups = group_by_schedule(runtime.rules)
    for name, rules in groups.items():
        report = runtime.engine.run_cycle(rules, name)
        log_cycle(report)
        reports.append(report)
        if report.unreachable:  # every other group would wait out the same retries
            if rest := list(groups)[len(reports) :]:
                log.error("the API is unreachable: not running %s this time", ", ".join(rest))
            break
    return reports


class Daemon:
    """Runs the rule groups on their schedules until SIGTERM/SIGINT.

    A stop is honoured within seconds: ``stopping`` is lent to every part that waits
    (the client's retry and rate-limit waits, the outbox between sends), the engine
    checks it between pages and between actions, and no job starts once it is set.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        jitter_seconds: int = 5,
        digests: Digests | None = None,
        notifications: NotificationOutbox | None = None,
        leadership: Leadership | None = None,
        retry_every: float = RETRY_EVERY,
    ) -> None:
        """``retry_every``: seconds between a standby's tries for the leader lock (tests: 0)."""
        from apscheduler.schedulers.background import BackgroundScheduler

        self.runtime = runtime
        self.notifications = notifications or runtime.notifications
        self.jitter_seconds = jitter_seconds
        self.stopping = threading.Event()
        # PostgreSQL: one replica of several acts (automations/leadership.py); None on SQLite.
        self.election: Election | None = None
        if leadership is not None:
            from automations.leadership import Election

            self.election = Election(
                leadership,
                on_gain=self._lead,
                on_loss=self._stand_by,
                on_standby=self._standby,
                retry_every=retry_every,
            )
        self.ledger_file = LedgerFile(runtime.ledger.path)
        self.fatal: AutomationsError | None = None  # what stopped the daemon, if not a signal
        self.scheduler = BackgroundScheduler(
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(MISFIRE_GRACE.total_seconds()),
            },
            timezone="UTC",
        )
        self._lock = threading.Lock()  # rule cycles share one client and ledger: one at a time
        # Digests and notifications have jobs and locks of their own (see their modules).
        host = JobHost(runtime.ledger, self.scheduler, self.stopping, self._ledger_intact)
        self.digest_jobs = DigestJobs(digests if digests is not None else runtime.digests, host)
        self.notification_jobs = NotificationJobs(self.notifications, host)
        self._lend_stop()
        self.metrics: Metrics | None = None
        self.health_server: HealthServer | None = None
        self.webhooks: WebhookService | None = None  # [webhooks]: receiver and worker
        self.first_cycle_done = threading.Event()
        self.groups: dict[str, list[AnyRule]] = {}  # the rules of each scheduled job
        self.reload_requested = threading.Event()  # SIGHUP; the main loop reloads

    @property
    def digests(self) -> Digests | None:
        """The running digests (a reload replaces them)."""
        return self.digest_jobs.digests

    def _lend_stop(self) -> None:
        """The parts that wait end their waits when the daemon stops; again after a reload,
        which builds new digests (the client stays)."""
        self.runtime.client.stopping = self.stopping
        if self.digests is not None:
            self.digests.outbox.stopping = self.stopping
        if self.notifications is not None:
            self.notifications.stopping = self.stopping
        if self.election is not None:  # and every effect asks the leader lock first
            from automations.leadership import lend_guard

            outbox = self.digests.outbox if self.digests is not None else None
            guard = self.election.leadership.may_act
            lend_guard(guard, self.runtime.engine, outbox, self.notifications)

    def _ledger_intact(self) -> bool:
        """False, and the daemon stops with exit 1, if the ledger file was deleted or replaced."""
        try:
            self.ledger_file.check()
        except LedgerReplaced as exc:
            if self.fatal is None:
                log.error("%s", exc)
                self.fatal = exc
            self.stopping.set()
            return False
        return True

    def _job(self, name: str) -> None:
        with self._lock:
            rules = self.groups.get(name)  # read under the lock: a reload may have changed them
            if self.stopping.is_set() or not rules or not self._ledger_intact():
                return
            report = self.runtime.engine.run_cycle(rules, name, self.stopping)
            log_cycle(report)
            if self.metrics is not None:
                self.metrics.observe_cycle(report)
        self.first_cycle_done.set()
        self.notification_jobs.wake(report.applied)

    def evaluate_incidents(self, incidents: Mapping[str, bool], label: str) -> IncidentsRun | None:
        """The rules for incidents webhooks named (``Engine.run_incidents``), under the cycles'
        lock so never beside a cycle; None when stopping, a standby or the ledger is gone
        (they wait in the ledger)."""
        with self._lock:
            if self.stopping.is_set() or not self.acting or not self._ledger_intact():
                return None  # a standby leaves them queued for the leader
            runtime = self.runtime  # read under the lock: a reload may replace it
            run = runtime.engine.run_incidents(runtime.rules, incidents, label, self.stopping)
        if self.metrics is not None:
            self.metrics.observe_actions(run.report)
        self.notification_jobs.wake(run.report.applied)
        return run

    def add_jobs(self) -> None:
        """One job per schedule; interval schedules also run once right away."""
        self.groups = group_by_schedule(self.runtime.rules)
        for name, rules in self.groups.items():
            self._add_rule_job(name, rules[0].options)
        self.digest_jobs.add_jobs()
        self.notification_jobs.add_job()

    def _add_rule_job(self, name: str, opts: RuleOptions) -> None:
        """The job of one schedule; it finds its rules in ``self.groups`` when it runs."""
        trigger, first_run = rule_trigger(opts, self.jitter_seconds)
        # APScheduler reads an explicit next_run_time=None as "paused": pass it only when set.
        start = {"next_run_time": first_run} if first_run else {}
        self.scheduler.add_job(self._job, trigger, id=name, name=name, args=(name,), **start)

    def _on_event(self, event: Any) -> None:
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED

        if event.code == EVENT_JOB_MISSED:
            log.warning(
                "schedule %s: a run was missed (daemon busy or asleep); coalesced", event.job_id
            )
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            log.warning("schedule %s: skipped, the previous cycle is still running", event.job_id)

    def _log_schedules(self, what: str) -> None:
        log.info(
            "%s: %d rules in %d schedules (%s)",
            what,
            len(self.runtime.rules),
            len(self.groups),
            "; ".join(f"{k}: {', '.join(r.name for r in v)}" for k, v in self.groups.items()),
        )
        if self.digests is not None:
            log.info("digests: %s", self.digest_jobs.describe())

    # -- SIGHUP ---------------------------------------------------------------------------------

    def _catch_sighup(self) -> dict[int, Any]:
        """SIGHUP asks the main loop to reload (no work in a signal handler); the previous
        handler, to restore. Windows has no SIGHUP."""
        if not hasattr(signal, "SIGHUP"):
            return {}

        def request(_signum: int, _frame: object) -> None:
            self.reload_requested.set()

        return {signal.SIGHUP: signal.signal(signal.SIGHUP, request)}

    def reload(self) -> bool:
        """Re-read the config file: if all of it is valid, its rules, schedules and digests
        replace the running ones between cycles; otherwise one error line, nothing changes."""
        from automations.errors import ConfigError
        from automations.reload import prepare_reload

        path = self.runtime.config.path
        log.info("reloading %s", path)
        try:
            new = prepare_reload(self.runtime)
        except Exception as exc:  # whatever is wrong with the new file, the old config runs on
            text = (
                str(exc) if isinstance(exc, ConfigError) else f"{path}: {type(exc).__name__}: {exc}"
            )
            one_line = "; ".join(line.strip() for line in text.splitlines() if line.strip())
            log.error("reload refused, still running the previous config: %s", one_line)
            return False
        # Between cycles and digest sends: both locks, so no job sees half of each config.
        with self._lock, self.digest_jobs.lock:
            before = self.groups
            self.runtime, self.digest_jobs.digests = new.runtime, new.digests
            self._lend_stop()
            self.groups = group_by_schedule(new.runtime.rules)
            if self.acting:  # a standby adds its jobs when it leads
                self._replace_jobs(before)
        if self.metrics is not None:
            from automations.daemon_health import metrics_after_reload

            metrics_after_reload(self.metrics, self.runtime)
        self._log_schedules("config reloaded")
        if new.restart_needed:
            log.warning(
                "config reload: %s changed; kept as started until a restart",
                ", ".join(new.restart_needed),
            )
        return True

    def _replace_jobs(self, before: dict[str, list[AnyRule]]) -> None:
        """A schedule that stays keeps its job and timing (no extra cycle); a new one starts
        like at start-up; a gone one stops. Digest jobs are rebuilt."""
        for name in before.keys() - self.groups.keys():
            self.scheduler.remove_job(name)
        for name, rules in self.groups.items():
            if name not in before:
                self._add_rule_job(name, rules[0].options)
        self.digest_jobs.replace_jobs()

    # -- leadership (PostgreSQL) ----------------------------------------------------------------

    @property
    def acting(self) -> bool:
        """Whether this daemon runs jobs: always on SQLite, while it leads on PostgreSQL."""
        return self.election is None or self.election.leader

    def _elect(self) -> None:
        if self.election is not None and not self.stopping.is_set():
            self.election.step()

    def _lead(self) -> None:
        """Leader now: settle what the previous leader left claimed, then every job, the rule
        cycles at once (no gap longer than one cycle after a takeover)."""
        if self.metrics is not None:
            self.metrics.observe_leader()
        try:
            reconcile_at_startup(self.runtime.engine)
        except LedgerError as exc:  # each cycle settles them first, once the ledger answers
            log.error("taking over: unconfirmed claims not settled yet: %s", exc)
        self.add_jobs()
        if self.webhooks is not None:  # deliveries a standby received wait in the ledger
            self.webhooks.worker.wake()

    def _stand_by(self, why: str) -> None:
        """No longer the leader: no job starts again (one running meets the guard and ends)."""
        self.scheduler.remove_all_jobs()
        if self.metrics is not None:
            self.metrics.observe_standby(f"lost leadership: {why}", changed=True)

    def _standby(self, state: str) -> None:
        if self.metrics is not None:
            self.metrics.observe_standby(state, changed=False)

    def serve_health(self) -> None:
        """Start /healthz and /metrics when ``[server] enabled``; nothing is imported otherwise."""
        settings = self.runtime.config.server
        if not settings.enabled:
            return
        from automations.daemon_health import start_metrics, start_server
        from automations.webhooks.service import webhook_service

        self.metrics = start_metrics(self.runtime, self.notifications)
        self.webhooks = webhook_service(self)
        self.health_server = start_server(
            settings, self.metrics, self.webhooks, lambda: self.digest_jobs.digests
        )

    def stop_health(self) -> None:
        if self.health_server is not None:
            self.health_server.stop()
            self.health_server = None
        if self.metrics is not None:
            from automations.daemon_health import stop_metrics

            stop_metrics(self.metrics, self.runtime.digest_events)

    def _catch_stop(self) -> dict[int, Any]:
        """SIGTERM and SIGINT set ``stopping``; the previous handlers, to restore."""

        def stop(signum: int, _frame: object) -> None:
            if self.stopping.is_set():
                # Said once: a handler that logs again (Ctrl-C held down) can interrupt a
                # log line being written and garble it.
                return
            log.info(
                "received %s: stopping; the action in progress finishes, the rest waits for "
                "the next start",
                signal.Signals(signum).name,
            )
            self.stopping.set()

        return {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    def run(self) -> None:
        """Block until a signal, then stop within seconds (see the class docstring).

        Raises what stopped the daemon if it was not a signal (a deleted ledger: exit 1).
        """
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED

        previous = self._catch_sighup()  # first: a reload asked for during start-up waits
        previous.update(self._catch_stop())  # and a stop asked for during start-up is honoured
        try:
            self.serve_health()
            if self.election is None:
                reconcile_at_startup(self.runtime.engine)  # if unreachable, each cycle tries first
            else:  # a standby until it holds the leader lock: then _lead settles and adds jobs
                self._standby("waiting for the leader lock")
                self.groups = group_by_schedule(self.runtime.rules)
            if self.webhooks is not None:  # deliveries queued before a restart go first
                self.webhooks.start()  # (on a standby they wait: evaluate_incidents)
            if self.election is None:
                self.add_jobs()  # the digest outbox's first run (start-up catch-up) is one of them
            self.scheduler.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
            if not self.stopping.is_set():
                self._log_schedules("daemon started")
                self.scheduler.start()
            self._elect()
            while not self.stopping.wait(0.5):
                self._elect()
                if self.reload_requested.is_set():
                    self.reload_requested.clear()
                    self.reload()
        finally:
            if self.scheduler.running:
                self.scheduler.shutdown(wait=True)  # jobs see the stop between steps
            if self.webhooks is not None:
                self.webhooks.stop()  # the batch in progress sees the stop between steps
            if self.election is not None:  # after the jobs: a standby takes over at once
                self.election.stop()
            self.stop_health()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            log.info("daemon stopped")
        if self.fatal is not None:
            raise self.fatal
