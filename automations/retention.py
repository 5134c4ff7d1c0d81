"""Retention: forget ledger rows older than ``[store] retention`` that guard nothing any more.

An event's key is what makes an action happen at most once, so the events of
an incident are forgotten only when no action of theirs can come due again:

- none of the incident's events moved (claimed, finished, re-armed) within the
  retention period, and none is unconfirmed;
- the API says the incident is gone (404), or it is closed, declined, merged
  or canceled and was not updated within the period (a reopened or edited
  incident is kept);
- and no configured rule's query returns it now (e.g. a mirror over closed
  incidents keeps their events as long as it runs).

An incident kept is asked about again after a week. Runs, releases, re-armed
events, finished outbox items and finished notifications whose event is gone
older than the period go without asking (see
automations/ledger/retention.py for what those keep). Pruning runs at the end
of a cycle, at most once an hour, and asks the API about at most 100 incidents
each time, so a first prune of a large old ledger spreads over many cycles.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from automations.catalog import Catalog
from automations.durations import format_duration
from automations.errors import APIRejected, UndecidableFilter
from automations.incidentio import Incident, IncidentIOClient
from automations.ledger import Ledger, Pruned
from automations.matching import matches
from automations.rules.base import AnyRule

log = logging.getLogger(__name__)

TERMINAL = frozenset({"closed", "declined", "merged", "canceled"})
PRUNE_EVERY = timedelta(hours=1)
CHECKS_PER_PRUNE = 100
RECHECK_AFTER = timedelta(days=7)


class Retention:
    """What the ledger keeps: ``keep`` of history, and whatever the rules still need."""

    def __init__(self, keep: timedelta, rules: Sequence[AnyRule], catalog: Catalog) -> None:
        self.keep = keep
        self.rules = list(rules)
        self.catalog = catalog

    def due(self, ledger: Ledger, now: datetime) -> bool:
        """An hour after the last prune (or a clock that went back past it)."""
        last = ledger.retention.last_pruned()
        return last is None or not now - PRUNE_EVERY < last <= now

    def prune(self, ledger: Ledger, client: IncidentIOClient, now: datetime) -> Pruned | None:
        """Forget what the period and the rules allow; None when not due yet.

        An unreachable API (APIUnavailable) stops the prune where it is; it is not
        recorded as done, so the next cycle carries on.
        """
        if not self.due(ledger, now):
            return None
        cutoff = now - self.keep
        pruned = Pruned()
        ledger.retention.prune_history(cutoff, pruned)
        candidates = ledger.retention.candidates(
            cutoff, checked_before=now - RECHECK_AFTER, limit=CHECKS_PER_PRUNE
        )
        for incident_id in candidates:
            try:
                incident: Incident | None = client.get_incident(incident_id)
            except APIRejected as exc:
                if exc.status != 404:
                    ledger.retention.keep_incident(incident_id, now)
                    pruned.kept_incidents += 1
                    continue
                incident = None  # deleted: nothing can be due for it again
            if incident is not None and self.still_guards(incident, cutoff):
                ledger.retention.keep_incident(incident_id, now)
                pruned.kept_incidents += 1
                continue
            if removed := ledger.retention.forget_incident(incident_id, cutoff, pruned):
                pruned.events += removed
                pruned.incidents += 1
        ledger.retention.save_pruned(now)
        if pruned.total or pruned.kept_incidents:
            log.info(self.line(pruned))
        return pruned

    def still_guards(self, incident: Incident, cutoff: datetime) -> bool:
        """Could an action of a rule come due for this incident again?"""
        if incident.status_category not in TERMINAL or incident.updated_at >= cutoff:
            return True
        for rule in self.rules:
            try:
                if matches(rule.query(), incident, self.catalog):
                    return True
            except UndecidableFilter:
                return True  # cannot tell: keep
        return False

    def line(self, pruned: Pruned) -> str:
        return (
            f"retention: forgot {pruned.events} events of {pruned.incidents} incidents, "
            f"{pruned.notifications} notifications, {pruned.runs} runs, {pruned.outbox} outbox "
            f"items and {pruned.releases} releases "
            f"older than {format_duration(self.keep)}; kept the events of "
            f"{pruned.kept_incidents} incidents still open or in a rule's query"
        )
