"""Poll and evaluate: the API's incidents, fetched once per query, judged by each rule.

Every distinct server-side query is fetched once per cycle however many rules share it,
one page at a time; each rule evaluates the page through its where's local part, with
the updates and follow-ups it asked for, each fetched once. A rule that raises is kept
as a failure for this cycle; the API failing stops the poll. For webhooks, one re-read
incident is matched locally against each rule's query (automations/matching.py). The
engine (automations/engine.py) takes what this finds through selection, claim and apply.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

from automations.catalog import Catalog
from automations.clock import Clock
from automations.cycle_report import Evaluation
from automations.errors import APIError, CycleStopped, UndecidableFilter
from automations.failures import RuleFailure
from automations.incidentio import (
    FollowUp,
    Incident,
    IncidentFilter,
    IncidentIOClient,
    IncidentUpdate,
)
from automations.incidentio.follow_ups import listing_mode, listing_modes
from automations.ledger import Ledger
from automations.matching import IncidentMatcher
from automations.rules.base import AnyRule, EvaluationContext
from automations.where import LocalFilter

log = logging.getLogger(__name__)


def stop_requested(stop: threading.Event | None) -> bool:
    """Has the daemon asked the cycle to stop? Checked between pages and between actions."""
    return stop is not None and stop.is_set()


class Poller:
    """Fetches what the rules ask for through one client, and runs their ``evaluate``."""

    def __init__(
        self, client: IncidentIOClient, ledger: Ledger, catalog: Catalog, *, clock: Clock
    ) -> None:
        self.client = client
        self.ledger = ledger  # read-only here: rules see ``ledger.events`` through the context
        self.catalog = catalog
        self.clock = clock
        # Each query compiled once for webhooks (None: undecidable, polling only).
        self._matchers: dict[str, IncidentMatcher | None] = {}

    def poll_and_evaluate(
        self,
        rules: Sequence[AnyRule],
        now: datetime,
        follow_ups: Mapping[str, Sequence[FollowUp]] | None,
        stop: threading.Event | None = None,
    ) -> Evaluation:
        """Fetch each distinct server-side query once, and evaluate it page by page.

        Rules sharing a query see the same pages; only one page is held at a time, so
        memory stays flat however many incidents match (docs/benchmarks.md). A rule
        that raises stops evaluating for this cycle; the others go on. ``stop`` set
        raises CycleStopped before the next page is fetched.
        """
        groups: dict[str, tuple[IncidentFilter, list[AnyRule]]] = {}
        for rule in rules:
            query = rule.query()
            groups.setdefault(query.key(), (query, []))[1].append(rule)
        result = Evaluation(candidates={rule.name: [] for rule in rules}, queries=len(groups))
        local = {rule.name: rule.local_filter() for rule in rules}
        seen: set[str] = set()
        for query, group in groups.values():
            for page in self.client.iter_incident_pages(query):
                seen.update(incident.id for incident in page.incidents)
                for rule in group:
                    if rule.name not in result.failures:
                        incidents = self._kept_locally(
                            local[rule.name], page.incidents, rule, result
                        )
                        self._evaluate_page(rule, incidents, now, follow_ups, result)
                if stop_requested(stop):
                    raise CycleStopped
        result.incidents_seen = len(seen)
        return result

    @staticmethod
    def _kept_locally(
        local: LocalFilter, incidents: Sequence[Incident], rule: AnyRule, result: Evaluation
    ) -> Sequence[Incident]:
        """The page as the rule's where sees it: its local part (team_ids) applied, counted."""
        if not local:
            return incidents
        kept = local.select(incidents)
        counts = result.kept_locally.setdefault(rule.name, [0, 0])
        counts[0] += len(kept)
        counts[1] += len(incidents)
        return kept

    def _evaluate_page(
        self,
        rule: AnyRule,
        incidents: Sequence[Incident],
        now: datetime,
        follow_ups: Mapping[str, Sequence[FollowUp]] | None,
        result: Evaluation,
    ) -> None:
        try:
            updates = self._updates_for(rule, incidents, now, result.updates)
            ctx = self.context(now, follow_ups, updates)
            result.candidates[rule.name] += rule.evaluate(incidents, ctx)
        except APIError:
            raise  # the API failed, not the rule: the cycle stops as for a failed page
        except Exception as exc:  # a buggy (plugin) rule skips its cycle, not the daemon
            # Kept without its traceback, whose frames hold the page: the report outlives it.
            failure = RuleFailure(rule.name, "evaluate", exc.with_traceback(None))
            result.failures[rule.name] = failure
            log.error("rule %s failed to evaluate and skips this cycle: %s", rule.name, failure)

    def context(
        self,
        now: datetime,
        follow_ups: Mapping[str, Sequence[FollowUp]] | None,
        updates: Mapping[str, Sequence[IncidentUpdate]] | None,
    ) -> EvaluationContext:
        """What a rule judges by (plugin API v1): the ledger only through its read-only view."""
        return EvaluationContext(
            now=now,
            catalog=self.catalog,
            follow_ups=follow_ups,
            updates=updates or {},
            ledger=self.ledger.events,
        )

    def follow_ups(self, rules: Sequence[AnyRule]) -> dict[str, list[FollowUp]] | None:
        """Every follow-up the rules' incidents can have, only when a rule asks about them.

        ``GET /v3/follow_ups`` at 250 a page: one listing for standard and
        retrospective incidents (the API's default), one more per other mode a
        rule's query selects, so a test incident's follow-ups are never missing
        (missing would read as "none left to do").
        """
        wanted = [rule for rule in rules if rule.needs_follow_ups]
        if not wanted:
            return None
        grouped: dict[str, list[FollowUp]] = defaultdict(list)
        for mode in listing_modes(rule.query() for rule in wanted):
            for item in self.client.iter_follow_ups(incident_mode=mode):
                grouped[item.incident_id].append(item)
        return grouped

    def _updates_for(
        self,
        rule: AnyRule,
        incidents: Sequence[Incident],
        now: datetime,
        fetched: dict[str, list[IncidentUpdate]],
    ) -> dict[str, list[IncidentUpdate]] | None:
        """Updates of the incidents the rule needs them for (``needs_updates``), each
        incident fetched once per poll; None when the rule needs none on this page."""
        wanted = [incident.id for incident in incidents if rule.needs_updates(incident, now)]
        if not wanted:
            return None
        for incident_id in wanted:
            if incident_id not in fetched:
                fetched[incident_id] = self.incident_updates(incident_id)
        return {incident_id: fetched[incident_id] for incident_id in wanted}

    def incident_updates(self, incident_id: str) -> list[IncidentUpdate]:
        """One incident's status and severity changes, oldest first (the API lists newest first)."""
        return list(reversed(list(self.client.iter_incident_updates(incident_id))))

    def follow_ups_for(self, rule: AnyRule, incident: Incident) -> dict[str, list[FollowUp]] | None:
        """The re-check's fresh follow-ups of one incident, in its own mode."""
        if not rule.needs_follow_ups:
            return None
        return self._incident_follow_ups(incident)

    def _incident_follow_ups(self, incident: Incident) -> dict[str, list[FollowUp]]:
        """One incident's follow-ups, fetched for its own mode."""
        mode = listing_mode(incident.mode)
        items = self.client.iter_follow_ups(incident_id=incident.id, incident_mode=mode)
        return {incident.id: list(items)}

    def evaluate_incident(
        self, rules: Sequence[AnyRule], incident: Incident, found: Evaluation
    ) -> None:
        """One fresh incident through ``rules``, with its follow-ups if one of them needs them."""
        if not rules:
            return
        now = self.clock()
        follow_ups = (
            self._incident_follow_ups(incident)
            if any(rule.needs_follow_ups for rule in rules)
            else None
        )
        for rule in rules:
            self._evaluate_page(rule, [incident], now, follow_ups, found)

    def matches(self, rule: AnyRule, incident: Incident) -> bool:
        """Would the rule's query return the incident? Decided locally, like the API does.

        A query the matcher cannot decide (automations/matching.py) leaves the rule to
        polling: said once per rule.
        """
        query, local = rule.query(), rule.local_filter()
        key = f"{query.key()}|{local.key()}"
        if key not in self._matchers:
            try:
                self._matchers[key] = IncidentMatcher(query, self.catalog, local)
            except UndecidableFilter as exc:
                self._matchers[key] = None
                log.warning(
                    "rule %s: its where cannot be decided without the API (%s); webhooks "
                    "leave it to its polling cycles",
                    rule.name,
                    exc,
                )
        matcher = self._matchers[key]
        return matcher is not None and matcher(incident)
