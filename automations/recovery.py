"""Recovering and starting safely: ``retry``, ``adopt``, and ``plan``'s never-run hint.

- ``retry`` re-arms FAILED events. It sends nothing: the next cycle re-checks
  each one, and only if the rule still wants the action does it claim the same
  event key again (so the action still happens at most once).
- ``adopt`` records every action that is due now as SKIPPED with the reason
  ``baseline: ...``: those keys are taken, so they never happen, and only
  incidents that become due later are acted on. Nothing is sent to the API
  but reads.
- A rule has **never run** on a ledger when the ledger holds no event for it
  (in any state, baselines included) and no cycle that evaluated it finished
  OK (``runs.status = ok``; ``adopt`` records one). ``plan`` says so when such
  a rule has a backlog, and suggests ``adopt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from automations.cycle_report import CycleReport
from automations.engine import Engine
from automations.errors import APIError, LedgerError
from automations.failures import RuleFailure, described
from automations.history import iso
from automations.ledger import Event, Ledger
from automations.rules.base import AnyRule, PlannedAction
from automations.text import one_line

BASELINE = "baseline"
ADOPT_SCHEDULE = "adopt"


# -- retry ------------------------------------------------------------------------------


def rearmed_line(event: Event) -> str:
    """What ``retry`` prints for one re-armed event."""
    name = f" {one_line(event.incident_name)!r}" if event.incident_name else ""
    return (
        f"re-armed {event.incident_reference}{name} [{event.rule}] {event.event_key} "
        f"(failed {iso(event.finished_at or event.claimed_at)}: {event.error})"
    )


# -- adopt ------------------------------------------------------------------------------


@dataclass
class Adopted:
    """What ``adopt`` did for one rule."""

    rule: str
    recorded: int = 0  # due now, recorded as a baseline
    already: int = 0  # due now, but the key was already in the ledger
    failure: RuleFailure | None = None  # the rule failed to evaluate: nothing recorded for it

    def line(self) -> str:
        if self.failure is not None:
            return f"{self.rule}: not adopted, the rule failed to evaluate: {self.failure}"
        text = f"{self.rule}: {self.recorded} actions due now recorded as skipped ({BASELINE})"
        if self.already:
            text += f"; {self.already} already in the ledger"
        return text

    def json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "recorded": self.recorded,
            "already": self.already,
            "error": self.failure.describe() if self.failure is not None else None,
        }


def baseline_reason(action: PlannedAction) -> str:
    return f"{BASELINE}: due when adopted ({action.reason})"


def adopt(engine: Engine, rules: Sequence[AnyRule]) -> list[Adopted]:
    """Record every action due now as a SKIPPED baseline, with no brake; one run row.

    The run (schedule ``adopt``) marks the rules as having run, so ``plan`` stops
    suggesting ``adopt`` even for a rule that had nothing due.
    """
    ledger = engine.ledger
    before = engine.client.counter.total()
    run_id = ledger.runs.start(ADOPT_SCHEDULE, rules=[r.name for r in rules], now=engine.clock())
    results = [Adopted(rule.name) for rule in rules]
    seen = 0
    try:
        found = engine.poller.poll_and_evaluate(
            rules, engine.clock(), engine.poller.follow_ups(rules)
        )
        seen = found.incidents_seen
        for rule, result in zip(rules, results, strict=True):
            result.failure = found.failures.get(rule.name)
            if result.failure is None:
                _record(ledger, found.candidates[rule.name], result, engine.clock())
    except (APIError, LedgerError) as exc:
        _finish(engine, run_id, results, seen, before, described(exc))
        raise
    errors = [f"{r.rule}: {r.failure}" for r in results if r.failure is not None]
    _finish(engine, run_id, results, seen, before, "; ".join(errors) or None)
    return results


def _record(
    ledger: Ledger, actions: Sequence[PlannedAction], result: Adopted, now: datetime
) -> None:
    for action in actions:
        recorded = ledger.events.record_baseline(
            rule=action.rule,
            incident_id=action.incident_id,
            incident_reference=action.incident_reference,
            incident_name=action.incident_name,
            event_key=action.event_key,
            reason=baseline_reason(action),
            request_body=action.request_body(),
            now=now,
        )
        if recorded:
            result.recorded += 1
        else:
            result.already += 1


def _finish(
    engine: Engine,
    run_id: int,
    results: Sequence[Adopted],
    seen: int,
    requests_before: int,
    error: str | None,
) -> None:
    recorded = sum(r.recorded for r in results)
    engine.ledger.runs.finish(
        run_id,
        incidents_seen=seen,
        actions_planned=recorded,
        actions_applied=0,
        actions_failed=0,
        actions_skipped=recorded,
        api_requests=engine.client.counter.total() - requests_before,
        error=error,
        now=engine.clock(),
    )


# -- plan's hint ------------------------------------------------------------------------


def never_run_hints(ledger: Ledger, report: CycleReport) -> list[str]:
    """For each rule that has never run and has actions due now: say so, and suggest adopt."""
    ran = ledger.runs.rules_that_ran()
    hints = []
    for outcome in report.rules:
        backlog = len(outcome.planned) + outcome.braked
        if outcome.rule in ran or not backlog:
            continue
        hints.append(
            f"rule {outcome.rule} has never run on this ledger and has a backlog: {backlog} "
            f"actions due now. To act only on incidents that become due from now on, record "
            f"these as a baseline first: automations adopt --rule {outcome.rule}"
        )
    return hints
