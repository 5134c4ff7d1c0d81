"""Prometheus metrics and the health verdict, fed by the engine, the client and digests.

A private registry (not prometheus_client's global one) so tests and the demo
can run several daemons in one process. API request counts, latency and
rate-limit waits are read from the client's own counters at scrape time, so
the hot path pays nothing for them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from automations.clock import host_now
from automations.durations import format_duration
from automations.errors import APIError, LedgerError
from automations.incidentio.metrics import LATENCY_BUCKETS

if TYPE_CHECKING:
    from automations.cycle_report import CycleReport
    from automations.incidentio import IncidentIOClient
    from automations.rules.base import AnyRule

MIN_STALE_AFTER = timedelta(minutes=5)
CRON_STALE_AFTER = timedelta(hours=2)
# A digest whose every build, render and send has failed for this long makes /healthz 503
# until one is sent: longer than a brief SMTP or API outage (sends retry after 1m, 2m, 4m,
# 8m by default), short enough to be noticed the same morning.
DIGEST_FAILING_AFTER = timedelta(minutes=15)


def default_stale_after(rules: Iterable[AnyRule]) -> timedelta:
    """Three missed intervals of the slowest rule is unhealthy; cron rules get two hours."""
    longest = MIN_STALE_AFTER
    for rule in rules:
        every = rule.options.every
        longest = max(longest, CRON_STALE_AFTER if every is None else 3 * every)
    return longest


class _ClientCollector(Collector):
    """API requests by route and status, latency, rate-limit waits: read at scrape time."""

    def __init__(self, client: IncidentIOClient) -> None:
        self.client = client

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "automations_api_requests",
            "incident.io API requests by method, route template and status",
            labels=["method", "route", "status"],
        )
        for (method, route, status), n in sorted(self.client.counter.counts().items(), key=str):
            requests.add_metric([method, route, str(status)], n)
        yield requests
        latency = HistogramMetricFamily(
            "automations_api_request_seconds",
            "incident.io API request latency by method and route template",
            labels=["method", "route"],
        )
        for (method, route), (buckets, total) in sorted(self.client.counter.latency().items()):
            cumulative, running = [], 0
            for bound, n in zip([*map(str, LATENCY_BUCKETS), "+Inf"], buckets, strict=True):
                running += n
                cumulative.append((bound, running))
            latency.add_metric([method, route], cumulative, total)
        yield latency
        malformed = CounterMetricFamily(
            "automations_api_malformed_records",
            "Records the API sent that could not be read and were skipped (each logged)",
            labels=["method", "route"],
        )
        for (method, route), n in sorted(self.client.counter.malformed_by_route().items()):
            malformed.add_metric([method, route], n)
        yield malformed
        bucket = self.client.rate_limiter
        waits = CounterMetricFamily(
            "automations_rate_limit_waits", "Times a request waited for the client-side limit"
        )
        waits.add_metric([], bucket.waits)
        yield waits
        waited = CounterMetricFamily(
            "automations_rate_limit_wait_seconds", "Seconds spent waiting for the limit"
        )
        waited.add_metric([], bucket.waited_seconds)
        yield waited


def failure_reason(exc: BaseException) -> str:
    """What failed, in our own words: the status, the call and the error's class.

    Never the error's text: /healthz is unauthenticated, and the text of an API
    error is whatever the API (or a proxy on the way) wrote, echoes included.
    """
    kind = type(exc).__name__
    if isinstance(exc, APIError):
        call = f" to {exc.method} {exc.route}" if exc.method and exc.route else ""
        if exc.status is not None:
            return f"the API answered {exc.status}{call} ({kind})"
        return f"no answer from the API{call} ({kind})"
    if isinstance(exc, LedgerError):
        return f"the ledger failed ({kind})"
    return f"an error ({kind})"


def cycle_failure(report: CycleReport) -> str:
    """Why a cycle counts as failed, from the report's numbers and names (ours), not texts."""
    if report.cause is not None:
        return failure_reason(report.cause)
    parts = [
        f"rule {rule.rule} could not evaluate" for rule in report.rules if rule.failure is not None
    ]
    failed = [rule for rule in report.rules if rule.failed]
    if failed:
        count = sum(len(rule.failed) for rule in failed)
        names = ", ".join(rule.rule for rule in failed)
        parts.append(f"{count} action{'s' if count != 1 else ''} failed (rule {names})")
    return "; ".join(parts) or "it stopped with an error"


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str


class Metrics:
    """Everything /metrics shows and /healthz decides, for one daemon."""

    def __init__(
        self,
        *,
        stale_after: timedelta,
        expects_cycles: bool = True,
        digest_failing_after: timedelta = DIGEST_FAILING_AFTER,
    ) -> None:
        self.registry = CollectorRegistry()
        self.stale_after = stale_after
        self.expects_cycles = expects_cycles  # False: only digests, no rules to run
        self.digest_failing_after = digest_failing_after
        self.started = host_now().timestamp()
        self._lock = threading.Lock()
        self._last_success: float | None = None
        self._last_error: str | None = None
        self._digests_seen: set[str] = set()
        self._digest_failing: dict[str, tuple[float, str]] = {}  # name: (since, last stage)
        self.cycles = Counter(
            "automations_cycles",
            "Rule cycles by schedule and outcome (ok, failed)",
            ["schedule", "outcome"],
            registry=self.registry,
        )
        self.actions = Counter(
            "automations_actions",
            "Actions by rule and outcome (applied, skipped, failed, braked)",
            ["rule", "outcome"],
            registry=self.registry,
        )
        self.digests = Counter(
            "automations_digests",
            "Digest deliveries by digest and outcome (sent, failed)",
            ["digest", "outcome"],
            registry=self.registry,
        )
        self.digest_failures = Counter(
            "automations_digest_failures",
            "Failed digest attempts by digest and stage (build, render, send)",
            ["digest", "stage"],
            registry=self.registry,
        )
        self.digest_last_sent = Gauge(
            "automations_digest_last_sent_timestamp_seconds",
            "Unix time each digest was last sent",
            ["digest"],
            registry=self.registry,
        )
        self.notifications = Counter(
            "automations_notifications",
            "Notification deliveries by channel and outcome (sent; retry: queued again with "
            "backoff; failed; expired; held: over the channel's max_per_hour)",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.http_dropped = Counter(
            "automations_http_dropped",
            "Connections to /healthz and /metrics closed unanswered: too slow to send a "
            "request (timeout) or pushed out by newer ones over the cap (evicted)",
            ["reason"],
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "automations_webhook_deliveries",
            "incident.io webhook deliveries by event type and outcome: on receipt accepted, "
            "duplicate, ignored (a type not acted on), refused (401), too_large (413), "
            "malformed (400), error (503: not recorded); then processed, retry, failed. "
            "Refused and too large ones were never verified: event type 'unverified'",
            ["event_type", "outcome"],
            registry=self.registry,
        )
        self.last_success_gauge = Gauge(
            "automations_last_successful_cycle_timestamp_seconds",
            "Unix time of the last cycle that finished without failures",
            registry=self.registry,
        )
        # Leadership (automations/leadership.py). On SQLite the one daemon is the leader.
        self.role = "leader"  # or "standby"
        self.elected = False  # True with PostgreSQL: the role is won in an election
        self._standby_state = ""  # what a standby says about the leader
        self.leader = Gauge(
            "automations_leader",
            "1 while this replica is the leader and runs the rules, digests and notifications "
            "(always 1 on SQLite), 0 while it is a standby",
            registry=self.registry,
        )
        self.leader.set(1)
        self.leadership_changes = Counter(
            "automations_leadership_changes",
            "Times this replica became the leader or stopped being it (PostgreSQL)",
            registry=self.registry,
        )

    def watch_client(self, client: IncidentIOClient) -> None:
        self.registry.register(_ClientCollector(client))

    def observe_cycle(self, report: CycleReport) -> None:
        self.cycles.labels(report.schedule, "ok" if report.ok else "failed").inc()
        self.observe_actions(report)
        with self._lock:
            if report.ok:
                self._last_success = host_now().timestamp()
                self._last_error = None
                self.last_success_gauge.set(self._last_success)
            else:
                self._last_error = cycle_failure(report)

    def observe_actions(self, report: CycleReport) -> None:
        """Count the actions of a cycle, or of incidents a webhook named."""
        for rule in report.rules:
            for outcome, n in (
                ("applied", len(rule.applied)),
                ("skipped", len(rule.skipped)),
                ("failed", len(rule.failed) + (1 if rule.failure is not None else 0)),
                ("braked", rule.braked),
            ):
                if n:
                    self.actions.labels(rule.rule, outcome).inc(n)

    def observe_webhook(self, event_type: str, outcome: str) -> None:
        """One delivery's outcome, on receipt or once processed."""
        self.webhook_deliveries.labels(event_type, outcome).inc()

    def observe_digest(self, name: str, outcome: str) -> None:
        """A delivery attempt ("sent" or "failed"); a sent digest ends its failing streak."""
        self.digests.labels(name, outcome).inc()
        if outcome == "sent":
            now = host_now().timestamp()
            self.digest_last_sent.labels(name).set(now)
            with self._lock:
                self._digests_seen.add(name)
                self._digest_failing.pop(name, None)

    def observe_notification(self, channel: str, outcome: str) -> None:
        """One attempt's outcome (the notification outbox's ``on_outcome``)."""
        self.notifications.labels(channel, outcome).inc()

    def observe_standby(self, state: str, *, changed: bool) -> None:
        """This replica waits as a standby; ``state`` (e.g. who leads) is what /healthz says."""
        with self._lock:
            self.elected, self.role, self._standby_state = True, "standby", state
        self.leader.set(0)
        if changed:
            self.leadership_changes.inc()

    def observe_leader(self) -> None:
        """This replica became the leader: its cycles' health counts from now."""
        with self._lock:
            self.elected, self.role = True, "leader"
            self.started = host_now().timestamp()
            self._last_success = self._last_error = None
            self._digest_failing.clear()
        self.leader.set(1)
        self.leadership_changes.inc()

    def observe_digest_failure(self, name: str, stage: str) -> None:
        """One failed attempt at ``stage``; the streak starts at the first since the last send."""
        self.digest_failures.labels(name, stage).inc()
        now = host_now().timestamp()
        with self._lock:
            self._digests_seen.add(name)
            since = self._digest_failing.get(name, (now, stage))[0]
            self._digest_failing[name] = (since, stage)

    def health(self, now: float | None = None) -> Health:
        """A standby is healthy (it is ready to take over); the leader as ``acting_health``
        says, its reason starting with its role when elected (PostgreSQL)."""
        with self._lock:
            role, state, elected = self.role, self._standby_state, self.elected
        if role == "standby":
            return Health(True, f"standby: {state}")
        verdict = self.acting_health(now)
        return Health(verdict.ok, f"leader: {verdict.reason}") if elected else verdict

    def acting_health(self, now: float | None = None) -> Health:
        """Unhealthy when rule cycles fail or stall, or a digest has failed every attempt for
        ``digest_failing_after``; the reason names each problem."""
        now = host_now().timestamp() if now is None else now
        with self._lock:
            failing = sorted(self._digest_failing.items())
            seen = bool(self._digests_seen)
        cycles = self._cycle_health(now) if self.expects_cycles else Health(True, "no rules to run")
        problems = [] if cycles.ok else [cycles.reason]
        notes = [cycles.reason] if cycles.ok else []
        for name, (since, stage) in failing:
            span = f"{format_duration(timedelta(seconds=now - since))} (last: {stage})"
            if now - since > self.digest_failing_after.total_seconds():
                problems.append(f"digest {name} has failed every attempt for {span}")
            else:
                notes.append(f"digest {name} failing for {span}")
        if problems:
            return Health(False, "; ".join(problems))
        if seen and not failing:
            notes.append("digests ok")
        return Health(True, "; ".join(notes))

    def _cycle_health(self, now: float) -> Health:
        """ok while the last cycle succeeded, within ``stale_after`` (or the daemon is younger)."""
        limit = self.stale_after.total_seconds()
        with self._lock:
            last, error = self._last_success, self._last_error
        if error is not None:
            return Health(False, f"the last cycle failed: {error}")
        if last is not None and now - last <= limit:
            return Health(True, f"last successful cycle {now - last:.0f}s ago")
        if last is None and now - self.started <= limit:
            return Health(True, "starting: no cycle has finished yet")
        since = "no cycle has succeeded" if last is None else f"no cycle for {now - last:.0f}s"
        return Health(False, f"{since} (limit {limit:.0f}s)")
