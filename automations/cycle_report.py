"""What a cycle reports: each rule's outcome, the poll's evaluation, the cycle's numbers.

Plain data the engine fills in as a cycle runs (``RuleOutcome`` per rule, ``Evaluation``
from the poll, ``CycleReport`` for the one log line per cycle, ``IncidentsRun`` for the
webhooks' few incidents), read by the daemon, the CLI, /healthz and the metrics. No I/O.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from automations.errors import APIError, APIRejected, APIUnavailable, AutomationsError, NotLeader
from automations.failures import CycleFailure, RuleFailure
from automations.incidentio import IncidentUpdate
from automations.ledger import Pause
from automations.rules.base import PlannedAction


@dataclass
class RuleOutcome:
    """What one rule did in one cycle."""

    rule: str
    planned: list[PlannedAction] = field(default_factory=list)
    applied: list[PlannedAction] = field(default_factory=list)
    skipped: list[tuple[PlannedAction, str]] = field(default_factory=list)
    failed: list[tuple[PlannedAction, APIError]] = field(default_factory=list)
    already_done: int = 0
    braked: int = 0
    brake: str = ""  # which limit held actions back, e.g. "max_actions_per_cycle=10"
    held: int = 0  # planned but not applied: the automations are paused
    failure: RuleFailure | None = None  # the rule raised: it skipped this cycle
    # The API could not be reached (after the client's retries): the cycle stopped here.
    gave_up: APIUnavailable | None = None
    lost_leadership: NotLeader | None = None  # the guard said no before an effect: the cycle ends
    # where.team_ids (judged after fetching): (incidents kept, incidents fetched); None without
    kept_locally: tuple[int, int] | None = None


@dataclass
class Evaluation:
    """What one poll found: each rule's candidate actions, and rules that raised."""

    candidates: dict[str, list[PlannedAction]]
    queries: int
    incidents_seen: int = 0
    failures: dict[str, RuleFailure] = field(default_factory=dict)  # rule name -> why
    # incident ID -> its updates, fetched at most once per poll however many rules ask
    updates: dict[str, list[IncidentUpdate]] = field(default_factory=dict)
    # rule name -> [kept, fetched] by its where's local part (rules that have one)
    kept_locally: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class CycleReport:
    """The numbers behind the one log line per cycle."""

    schedule: str
    started_at: datetime
    finished_at: datetime | None = None
    # Wall-clock duration from a monotonic clock: the server clock can jump mid-cycle.
    seconds: float | None = None
    _started: float = field(default_factory=time.monotonic, repr=False)
    incidents_seen: int = 0
    queries: int = 0
    api_requests: int = 0
    rules: list[RuleOutcome] = field(default_factory=list)
    # The cycle stopped at the first unreachable answer; `once` stops there too.
    unreachable: bool = False
    stopped: bool = False  # the daemon is stopping: the cycle ended between two steps
    # This replica lost the leader lock (PostgreSQL): the cycle ended before an effect.
    lost_leadership: str | None = None
    # What ended the cycle early, if anything (``error`` in words, ``cause`` the exception).
    failure: CycleFailure | None = None
    # `automations pause`: the cycle polled and planned but held its edits.
    paused: Pause | None = None

    @property
    def error(self) -> str | None:
        return None if self.failure is None else self.failure.describe()

    @property
    def cause(self) -> AutomationsError | None:
        return None if self.failure is None else self.failure.error

    def finish(self, now: datetime) -> None:
        self.finished_at = now
        self.seconds = time.monotonic() - self._started

    @property
    def planned(self) -> int:
        return sum(len(r.planned) for r in self.rules)

    @property
    def applied(self) -> int:
        return sum(len(r.applied) for r in self.rules)

    @property
    def skipped(self) -> int:
        return sum(len(r.skipped) for r in self.rules)

    @property
    def failed(self) -> int:
        return sum(len(r.failed) for r in self.rules) + sum(
            1 for r in self.rules if r.failure is not None
        )

    @property
    def ok(self) -> bool:
        return self.error is None and self.failed == 0

    def summary(self) -> dict[str, Any]:
        seconds = self.seconds
        return {
            "schedule": self.schedule,
            "incidents": self.incidents_seen,
            "queries": self.queries,
            "planned": self.planned,
            "applied": self.applied,
            "skipped": self.skipped,
            "failed": self.failed,
            "braked": sum(r.braked for r in self.rules),
            "api_requests": self.api_requests,
            "seconds": round(seconds, 3) if seconds is not None else None,
            "error": self.error,
            "paused": self.paused.describe() if self.paused else None,
        }

    def line(self) -> str:
        s = self.summary()
        text = (
            f"cycle {s['schedule']}: {s['incidents']} incidents from {s['queries']} queries, "
            f"{s['planned']} planned, {s['applied']} applied, {s['skipped']} skipped, "
            f"{s['failed']} failed, {s['api_requests']} API requests in {s['seconds']}s"
        )
        if s["braked"]:
            text += f", {s['braked']} held back by the safety brake"
        if s["paused"]:
            held = sum(r.held for r in self.rules)
            text += f"; PAUSED ({s['paused']}): {held} held back until `automations resume`"
        if s["error"]:
            text += f"; error: {s['error']}"
        if self.lost_leadership is not None:
            text += f"; stopped early: no longer the leader ({self.lost_leadership})"
        elif self.stopped:
            text += "; stopped early: the daemon is stopping"
        return text


@dataclass
class IncidentsRun:
    """What ``Engine.run_incidents`` did: the report, and the incidents it could not read."""

    report: CycleReport
    # incident ID -> the API's refusal to show it (404: deleted; 403)
    unreadable: dict[str, APIRejected] = field(default_factory=dict)
