"""One cycle: poll -> evaluate -> claim -> apply -> record.

Reads top to bottom like httpx's send chain: each step handles one concern.
Every edit is claimed in the ledger before it is sent and confirmed after, so
a crash can at worst leave an unconfirmed claim, which ``reconcile`` settles
against the incident's real state before anything else runs.

A stop (the daemon's SIGTERM) is checked between pages and between actions:
the action in progress finishes, nothing new is claimed, and the report says
the cycle stopped early.

The steps it strings together live in their own modules: the poll and the rules'
evaluate in automations/poll.py, selection and the brake in automations/selection.py,
reconcile in automations/reconcile.py, the report in automations/cycle_report.py; the
claim -> re-read -> effect -> record chain is here (``Engine._apply``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence

from automations.catalog import Catalog
from automations.clock import Clock, host_now
from automations.cycle_report import CycleReport, Evaluation, IncidentsRun, RuleOutcome
from automations.effects import Applied, effectors
from automations.errors import (
    APIError,
    APIRejected,
    APIUnavailable,
    CycleStopped,
    LedgerError,
    NotLeader,
)
from automations.failpoints import Failpoints
from automations.failures import CycleFailure
from automations.incidentio import (
    FollowUp,
    Incident,
    IncidentIOClient,
)
from automations.leadership import Guard
from automations.ledger import Event, Ledger, Pause
from automations.logs import action_fields
from automations.notify.notice import ACTION_APPLIED, NOTICE, IncidentSummary, Notice
from automations.notify.sender import ChannelPolicy
from automations.notify.spec import QueuedNotice, notices_for
from automations.poll import Poller, stop_requested
from automations.reconcile import Reconciler
from automations.retention import Retention
from automations.rules.base import AnyRule, EvaluationContext, PlannedAction
from automations.selection import DAY, brake, notify_spec, sort_candidates

log = logging.getLogger(__name__)


class Engine:
    """Runs cycles for a set of rules against one client and one ledger."""

    def __init__(
        self,
        client: IncidentIOClient,
        ledger: Ledger,
        catalog: Catalog,
        *,
        clock: Clock = host_now,
        retention: Retention | None = None,
        channels: Mapping[str, ChannelPolicy] | None = None,
        may_act: Guard | None = None,
        failpoints: Failpoints | None = None,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.catalog = catalog
        self.clock = clock
        self.retention = retention  # None: the ledger is never pruned (plan, adopt)
        self.effectors = effectors(client)
        # The configured channels' policies: which may see a private incident (notices_for).
        self.channels: Mapping[str, ChannelPolicy] = channels or {}
        # The leader guard (automations/leadership.py), asked before each effect; None: SQLite,
        # where the file lock makes this process the only one.
        self.may_act = may_act
        # Crash points for the tests of at-most-once (automations/failpoints.py): none armed.
        self.failpoints = failpoints or Failpoints()
        self._refusals_logged: set[tuple[str, str]] = set()  # (event key, reason): log once
        self.reconciler = Reconciler(
            client, ledger, clock=clock, channels=self.channels, failpoints=self.failpoints
        )
        self.poller = Poller(client, ledger, catalog, clock=clock)

    # -- select (plan, and each cycle) ---------------------------------------------------------

    def plan(self, rules: Sequence[AnyRule]) -> tuple[list[PlannedAction], CycleReport]:
        """The dry run: what would be done now. Reads only; writes neither API nor ledger."""
        report = CycleReport(schedule="plan", started_at=self.clock())
        before = self.client.counter.total()
        follow_ups = self.poller.follow_ups(rules)
        found = self.poller.poll_and_evaluate(rules, self.clock(), follow_ups)
        report.queries, report.incidents_seen = found.queries, found.incidents_seen
        actions: list[PlannedAction] = []
        for rule in rules:
            outcome = self._select(rule, found)
            actions.extend(outcome.planned)
            report.rules.append(outcome)
        report.api_requests = self.client.counter.total() - before
        report.finish(self.clock())
        return actions, report

    def _select(self, rule: AnyRule, found: Evaluation) -> RuleOutcome:
        """Candidates not done before, up to the rule's brake: the same for plan and run.

        A refused candidate (``PlannedAction.refused``) is skipped with its reason and
        never claimed, so it is looked at again next cycle.
        """
        outcome = RuleOutcome(rule.name, failure=found.failures.get(rule.name))
        if (kept := found.kept_locally.get(rule.name)) is not None:
            outcome.kept_locally = (kept[0], kept[1])
        if outcome.failure is not None:
            return outcome
        candidates = found.candidates[rule.name]
        done = self.ledger.events.done_keys(a.event_key for a in candidates)
        fresh, refused, outcome.already_done = sort_candidates(candidates, done)
        for action, reason in refused:
            outcome.skipped.append((action, reason))
            self._log_refusal(action, reason)
        if fresh:
            today = self.ledger.events.applied_since(rule.name, self.clock() - DAY)
            outcome.planned, outcome.braked, outcome.brake = brake(
                fresh,
                per_cycle=rule.options.max_actions_per_cycle,
                per_day=rule.options.max_actions_per_day,
                applied_today=today,
            )
        return outcome

    def _log_refusal(self, action: PlannedAction, reason: str) -> None:
        """Once per process for each key and reason: it stays refused every cycle until fixed."""
        if (action.event_key, reason) in self._refusals_logged:
            return
        self._refusals_logged.add((action.event_key, reason))
        log.warning(
            "%s %s: not applied, %s",
            action.rule,
            action.incident_reference,
            reason,
            extra=action_fields(action, "skipped", reason=reason),
        )

    # -- the cycle ----------------------------------------------------------------------------

    def run_cycle(
        self, rules: Sequence[AnyRule], schedule: str, stop: threading.Event | None = None
    ) -> CycleReport:
        """Poll, evaluate, claim, apply, record; a failure of one rule spares the others.

        ``stop`` (the daemon's) is checked between pages and between actions.
        """
        report = CycleReport(schedule=schedule, started_at=self.clock())
        before = self.client.counter.total()
        run_id = self.ledger.runs.start(
            schedule, rules=[rule.name for rule in rules], now=report.started_at
        )
        try:
            report.paused = self.ledger.kill_switch.paused()
            self.reconcile()
            follow_ups = self.poller.follow_ups(rules)
            found = self.poller.poll_and_evaluate(rules, self.clock(), follow_ups, stop)
            report.queries, report.incidents_seen = found.queries, found.incidents_seen
            self._run_rules(rules, found, follow_ups, report, stop)
        except CycleStopped:
            report.stopped = True
        except (APIError, LedgerError) as exc:
            self._stopped_by(report, exc, stop)
        if not (report.unreachable or report.stopped):
            self._prune()
        report.api_requests = self.client.counter.total() - before
        report.finish(self.clock())
        try:
            self.ledger.runs.finish(
                run_id,
                incidents_seen=report.incidents_seen,
                actions_planned=report.planned,
                actions_applied=report.applied,
                actions_failed=report.failed,
                actions_skipped=report.skipped,
                api_requests=report.api_requests,
                error=report.error,
                now=report.finished_at,
            )
        except LedgerError as exc:
            if report.failure is None:
                report.failure = CycleFailure("record", exc)
        return report

    def _run_rules(
        self,
        rules: Sequence[AnyRule],
        found: Evaluation,
        follow_ups: Mapping[str, Sequence[FollowUp]] | None,
        report: CycleReport,
        stop: threading.Event | None,
    ) -> None:
        """Each rule's candidates through select -> brake -> apply, in order, into ``report``;
        a stop, a lost leader lock or an unreachable API ends it there."""
        for index, rule in enumerate(rules):
            outcome = self._run_rule(rule, found, follow_ups, report.paused, stop)
            report.rules.append(outcome)
            if outcome.held and report.paused is None:  # paused during this cycle
                report.paused = self.ledger.kill_switch.paused()
            if outcome.lost_leadership is not None:
                report.stopped, report.lost_leadership = True, str(outcome.lost_leadership)
                break
            if stop_requested(stop):  # a retry cut short by the stop is no outage
                report.stopped = True
                break
            if outcome.gave_up is not None:
                self._give_up(report, outcome.gave_up, [r.name for r in rules[index + 1 :]])
                break

    @staticmethod
    def _stopped_by(
        report: CycleReport, exc: APIError | LedgerError, stop: threading.Event | None
    ) -> None:
        """A page, a read or the ledger failed: the cycle ends with this error."""
        report.failure = CycleFailure("read", exc)
        report.unreachable = isinstance(exc, APIUnavailable)
        report.stopped = stop_requested(stop)

    # -- a few incidents, now (webhooks) ---------------------------------------------------

    def run_incidents(
        self,
        rules: Sequence[AnyRule],
        incidents: Mapping[str, bool],
        label: str,
        stop: threading.Event | None = None,
    ) -> IncidentsRun:
        """The rules for a few incidents, each re-read now: what webhook deliveries ask for.

        ``incidents`` maps an incident ID to whether only rules that need follow-ups look
        at it (the deliveries were about its follow-ups). Each incident is read again
        (``GET /v2/incidents/{id}``: a delivery's body may be older than the incident, or
        carry only its ID) and judged by every rule whose query matches it, locally as the
        API would (automations/matching.py); updates and follow-ups are fetched only for
        rules that need them. The candidates then take the cycle's path: not done before,
        the brakes, claim -> re-read -> re-check -> effect -> record, held while paused.
        An incident the API will not show (404: deleted; 403) is left out, in
        ``unreadable``. The caller keeps this from overlapping a cycle of the same rules.
        """
        report = CycleReport(schedule=label, started_at=self.clock())
        run = IncidentsRun(report)
        before = self.client.counter.total()
        try:
            report.paused = self.ledger.kill_switch.paused()
            self.reconcile()
            found = Evaluation(candidates={rule.name: [] for rule in rules}, queries=0)
            for incident_id, follow_ups_only in incidents.items():
                judges = [
                    rule
                    for rule in rules
                    if (rule.needs_follow_ups or not follow_ups_only)
                    and rule.name not in found.failures
                ]
                if not judges:  # e.g. a follow-up changed and no rule looks at follow-ups
                    continue
                try:
                    incident = self.client.get_incident(incident_id)
                except APIRejected as exc:
                    run.unreadable[incident_id] = exc
                    continue
                found.incidents_seen += 1
                judges = [rule for rule in judges if self.poller.matches(rule, incident)]
                self.poller.evaluate_incident(judges, incident, found)
                if stop_requested(stop):
                    raise CycleStopped
            report.incidents_seen = found.incidents_seen
            acting = [r for r in rules if found.candidates[r.name] or r.name in found.failures]
            self._run_rules(acting, found, None, report, stop)
        except CycleStopped:
            report.stopped = True
        except (APIError, LedgerError) as exc:
            self._stopped_by(report, exc, stop)
        report.api_requests = self.client.counter.total() - before
        report.finish(self.clock())
        return run

    def _prune(self) -> None:
        """Retention, at most hourly (automations/retention.py); a failure waits for the next
        cycle and never fails this one."""
        if self.retention is None:
            return
        try:
            self.retention.prune(self.ledger, self.client, self.clock())
        except (APIError, LedgerError) as exc:
            log.warning("retention: pruning the ledger stopped, the next cycle goes on: %s", exc)

    def _run_rule(
        self,
        rule: AnyRule,
        found: Evaluation,
        follow_ups: Mapping[str, Sequence[FollowUp]] | None,
        pause: Pause | None,
        stop: threading.Event | None = None,
    ) -> RuleOutcome:
        outcome = self._select(rule, found)
        if outcome.braked:
            log.error(
                "SAFETY BRAKE: rule %s wanted %d edits this cycle, more than %s allows; "
                "applying %d and holding back %d. If this is expected, raise the limit; "
                "otherwise check the rule's where/require with `automations plan`.",
                rule.name,
                len(outcome.planned) + outcome.braked,
                outcome.brake,
                len(outcome.planned),
                outcome.braked,
            )
        if pause is not None:
            self._hold(outcome, outcome.planned)
            return outcome
        try:
            for index, action in enumerate(outcome.planned):
                if stop_requested(stop):  # not claimed yet: the next start plans it again
                    break
                # `automations pause` takes effect between two edits, not only between cycles.
                if index and self.ledger.kill_switch.paused() is not None:
                    self._hold(outcome, outcome.planned[index:])
                    break
                self._apply(rule, action, outcome)
        except APIUnavailable as exc:
            outcome.gave_up = exc
        except NotLeader as exc:
            outcome.lost_leadership = exc
        return outcome

    def _hold(self, outcome: RuleOutcome, actions: Sequence[PlannedAction]) -> None:
        """Paused: say what would be applied, claim and send nothing (it stays due)."""
        outcome.held += len(actions)
        for action in actions:
            log.warning(
                "PAUSED, not applied: %s %s: %s",
                action.rule,
                action.incident_reference,
                action.reason,
                extra=action_fields(action, "paused"),
            )

    def _give_up(self, report: CycleReport, error: APIUnavailable, not_run: Sequence[str]) -> None:
        """One unreachable answer ends the cycle: every other request would wait just as long."""
        report.failure = CycleFailure("apply", error)
        report.unreachable = True
        log.error(
            "giving up this cycle: the API is unreachable (%s); the remaining actions%s wait "
            "for the next cycle",
            error,
            f" and rules ({', '.join(not_run)})" if not_run else "",
        )

    # -- claim, apply, record -----------------------------------------------------------------

    def _apply(self, rule: AnyRule, action: PlannedAction, outcome: RuleOutcome) -> None:
        """Claim -> re-read -> re-check -> effect -> record: at most once, ever."""
        if not self._claim(action):
            outcome.already_done += 1
            return
        self.failpoints.hit("after_claim")
        fresh = self._reread(rule, action, outcome)
        if fresh is None:
            return
        incident, ctx = fresh
        if not self._recheck(rule, action, incident, ctx, outcome):
            return
        self.failpoints.hit("after_reread")
        self._still_leader(action)
        applied = self._effect(action, incident, outcome)
        if applied is None:
            return
        self.failpoints.hit("after_edit")
        self._record(action, applied, outcome)
        self.failpoints.hit("after_confirm")

    def _claim(self, action: PlannedAction) -> bool:
        """Take the event key in the ledger before any side effect; False if it is taken."""
        return self.ledger.events.claim(
            rule=action.rule,
            incident_id=action.incident_id,
            incident_reference=action.incident_reference,
            incident_name=action.incident_name,
            event_key=action.event_key,
            reason=action.reason,
            request_body=action.request_body(),
            now=self.clock(),
            notify=notify_spec(action),
            kind=action.kind,
            details=action.details,
            incident_private=action.incident_private,
            incident_mode=action.incident_mode,
        )

    def _reread(
        self, rule: AnyRule, action: PlannedAction, outcome: RuleOutcome
    ) -> tuple[Incident, EvaluationContext] | None:
        """The incident as it is now, with what the rule needs to judge it; None if refused."""
        try:
            incident = self.client.get_incident(action.incident_id)
            now = self.clock()
            # The re-check judges the fresh incident by fresh updates, like the poll did.
            updates = (
                {incident.id: self.poller.incident_updates(incident.id)}
                if rule.needs_updates(incident, now)
                else None
            )
            ctx = self.poller.context(now, self.poller.follow_ups_for(rule, incident), updates)
        except APIRejected as exc:
            # Refused, not unreachable: failed (never "skipped"), so it shows and can be retried.
            error = f"cannot re-read the incident: {exc}"
            self.ledger.events.mark_failed(action.event_key, error=error, now=self.clock())
            self._failed(action, outcome, exc, "not applied, the API refused the re-read")
            return None
        except APIError as exc:
            # Nothing was sent; a later cycle may retry.
            self.ledger.events.release(action.event_key, now=self.clock())
            self._failed(action, outcome, exc, "not applied, re-read failed", level=logging.WARNING)
            raise
        return incident, ctx

    def _recheck(
        self,
        rule: AnyRule,
        action: PlannedAction,
        incident: Incident,
        ctx: EvaluationContext,
        outcome: RuleOutcome,
    ) -> bool:
        """Does the action still apply to the fresh incident? If not, release the claim."""
        why_not = (
            rule.still_applies(action, incident, ctx)
            if rule.local_filter()(incident)
            else "no longer owned by a team in where.team_ids after re-reading the incident"
        )
        if why_not is None:
            return True
        # The condition may hold again later.
        self.ledger.events.release(action.event_key, now=self.clock())
        outcome.skipped.append((action, why_not))
        log.info(
            "%s %s: skipped, %s",
            rule.name,
            action.incident_reference,
            why_not,
            extra=action_fields(action, "skipped", reason=why_not),
        )
        return False

    def _still_leader(self, action: PlannedAction) -> None:
        """The last check before the effect: a replica that lost the leader lock sends nothing,
        frees the claim for the new leader and ends the cycle (NotLeader)."""
        if self.may_act is None:
            return
        try:
            self.may_act()
        except NotLeader:
            try:
                self.ledger.events.release(action.event_key, now=self.clock())
            except LedgerError as exc:  # left unconfirmed: the new leader's reconcile settles it
                log.warning("%s: not released after losing leadership: %s", action.event_key, exc)
            raise

    def _effect(
        self, action: PlannedAction, incident: Incident, outcome: RuleOutcome
    ) -> Applied | None:
        """Carry the action out through its effector; None if the API refused it."""
        try:
            return self.effectors[action.effect].apply(action, incident)
        except APIRejected as exc:
            self.ledger.events.mark_failed(action.event_key, error=str(exc), now=self.clock())
            self._failed(action, outcome, exc, "the API refused the edit")
            return None
        except APIError as exc:
            # Unknown outcome (the edit may have landed): leave the claim unconfirmed for reconcile.
            self._failed(action, outcome, exc, "edit outcome unknown, will reconcile", "unknown")
            raise

    def _record(self, action: PlannedAction, applied: Applied, outcome: RuleOutcome) -> None:
        """Confirm the claim (the action is done, and is never done again) and queue its
        notifications in the same transaction."""
        now = self.clock()
        notices: list[QueuedNotice] = []
        if action.notifies:
            notice = Notice(
                event_key=action.event_key,
                type=NOTICE if action.effect == "notify" else ACTION_APPLIED,
                rule=action.rule,
                action=action.kind,
                reason=action.reason,
                occurred_at=now,
                incident=IncidentSummary.of(applied.incident),
                details=dict(action.details),
            )
            notices = notices_for(notify_spec(action), notice, self.channels)
        self.ledger.events.mark_applied(
            action.event_key, request_id=applied.request_id, now=now, notices=notices
        )
        outcome.applied.append(action)
        log.info(
            "%s %s %r: %s",
            action.rule,
            action.incident_reference,
            action.incident_name,
            action.reason,
            extra=action_fields(action, "applied"),
        )

    @staticmethod
    def _failed(
        action: PlannedAction,
        outcome: RuleOutcome,
        exc: APIError,
        what: str,
        logged_as: str = "failed",
        *,
        level: int = logging.ERROR,
    ) -> None:
        """Count a failed action and log it as one line with its structured fields."""
        outcome.failed.append((action, exc))
        log.log(
            level,
            "%s %s: %s: %s",
            action.rule,
            action.incident_reference,
            what,
            exc,
            extra=action_fields(action, logged_as, error=str(exc)),
        )

    # -- reconcile ----------------------------------------------------------------------------

    def reconcile(self) -> list[tuple[Event, str]]:
        """Settle claims left unconfirmed before anything else acts (automations/reconcile.py)."""
        return self.reconciler.settle()
