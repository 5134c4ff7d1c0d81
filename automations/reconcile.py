"""Settle the claims a crash or a lost answer left unconfirmed, before anything else acts.

A claim whose edit's outcome is unknown is judged against the incident as it is now and
its updates since the claim: the edit landed (reconciled, its notifications queued), it
did not (released, so the rule re-checks it), or it cannot be told because a field the
updates do not record changed since (left as skipped, never sent twice). Claims of
another live process are left to it. The engine runs this before every cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from automations.clock import Clock
from automations.errors import APIRejected
from automations.failpoints import Failpoints
from automations.incidentio import Incident, IncidentIOClient
from automations.ledger import Event, Ledger
from automations.ledger.owners import Owner, may_settle
from automations.logs import event_fields
from automations.notify.notice import ACTION_APPLIED, IncidentSummary, Notice
from automations.notify.sender import ChannelPolicy
from automations.notify.spec import QueuedNotice, notices_for

log = logging.getLogger(__name__)


class Reconciler:
    """Settles unconfirmed claims against the incidents, through one client and one ledger."""

    def __init__(
        self,
        client: IncidentIOClient,
        ledger: Ledger,
        *,
        clock: Clock,
        channels: Mapping[str, ChannelPolicy],
        failpoints: Failpoints,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.clock = clock
        self.channels = channels  # which may see a private incident (notices_for)
        self.failpoints = failpoints
        self._left_to_owner: set[str] = set()  # claims of a live process, logged once

    def settle(self) -> list[tuple[Event, str]]:
        """Settle claims left unconfirmed (a crash, a lost answer), before anything else acts.

        Runs before every cycle, so an edit whose outcome was unknown is settled at the
        next one, and at start-up. Only claims whose process is gone (or this one, whose
        cycles never overlap) are settled: another live process's claim may be in flight
        (see ledger/owners.py). APIUnavailable stops it: the rest stay unconfirmed.
        """
        settled: list[tuple[Event, str]] = []
        now = self.clock()
        for event in self.ledger.events.unconfirmed():
            if not may_settle(event.owner, event.claimed_at, now):
                self._leave_to_owner(event)
                continue
            if not (event.request_body or {}).get("incident"):
                # A notify-only action: its notifications are queued in the same transaction
                # that confirms it, so an unconfirmed one queued nothing.
                settled.append(self._release(event, "its notifications were never queued"))
                continue
            try:
                incident = self.client.get_incident(event.incident_id)
            except APIRejected as exc:
                # Whether the edit landed is unknown: failed, so it shows and can be retried.
                error = f"reconcile: cannot re-read the incident: {exc}"
                self.ledger.events.mark_failed(event.event_key, error=error, now=self.clock())
                settled.append((event, "failed"))
                fields = event_fields(event, "failed", reason=event.reason)
                fields["fields"]["error"] = error
                log.error(
                    "could not settle %s on %s: the API refused the re-read: %s",
                    event.event_key,
                    event.incident_reference,
                    exc,
                    extra=fields,
                )
                continue
            self.failpoints.hit("reconcile_after_read")
            if edit_visible(event.request_body or {}, incident, self._updates_since(event)):
                reason = "edit found applied after an interrupted run"
                self.ledger.events.mark_reconciled(
                    event.event_key,
                    reason=reason,
                    now=self.clock(),
                    notices=self._reconciled_notices(event, incident),
                )
                settled.append((event, "reconciled"))
                log.warning(
                    "reconciled %s on %s: the edit had landed before the interruption",
                    event.event_key,
                    event.incident_reference,
                    extra=event_fields(event, "reconciled", reason=reason),
                )
            elif unrecorded_edit_overwritten(event.request_body or {}, incident, event.claimed_at):
                reason = (
                    "after an interrupted run the incident does not show the edit, but it "
                    "changed since the claim: someone may have changed the field back; left as is"
                )
                self.ledger.events.mark_skipped(event.event_key, reason=reason, now=self.clock())
                settled.append((event, "skipped"))
                log.warning(
                    "left %s on %s: %s",
                    event.event_key,
                    event.incident_reference,
                    reason,
                    extra=event_fields(event, "skipped", reason=reason),
                )
            else:
                settled.append(self._release(event, "the edit had not landed"))
        return settled

    def _reconciled_notices(self, event: Event, incident: Incident) -> list[QueuedNotice]:
        """An interrupted edit that landed is announced as if it had been recorded then."""
        if not event.notify:
            return []
        notice = Notice(
            event_key=event.event_key,
            type=ACTION_APPLIED,
            rule=event.rule,
            action="edit",
            reason=event.reason,
            occurred_at=self.clock(),
            incident=IncidentSummary.of(incident),
        )
        return notices_for(event.notify, notice, self.channels)

    def _release(self, event: Event, why: str) -> tuple[Event, str]:
        """Nothing took effect: free the key so the rule re-checks it next cycle."""
        self.ledger.events.release(event.event_key, now=self.clock())
        log.warning(
            "released %s on %s: %s; the rule will re-check it",
            event.event_key,
            event.incident_reference,
            why,
            extra=event_fields(event, "released", reason=why),
        )
        return event, "released"

    def _leave_to_owner(self, event: Event) -> None:
        """Another live process claimed it (two processes on one ledger): say so once."""
        if event.event_key in self._left_to_owner:
            return
        self._left_to_owner.add(event.event_key)
        log.warning(
            "not settling %s on %s: it was claimed by %s, which may still be at work; "
            "another automations process is using this ledger",
            event.event_key,
            event.incident_reference,
            Owner.parse(event.owner) or "another process",
            extra=event_fields(event, "left", reason="claimed by a live process"),
        )

    def _updates_since(self, event: Event) -> list[dict[str, Any]]:
        """Severity/status changes made after the claim, to spot an edit a human undid since.

        Unreachable: raised, so the claim stays unconfirmed; judging on the incident alone
        could miss an edit that landed and was undone, and send it again. Refused (e.g. no
        permission to read updates): judged on the incident alone.
        """
        try:
            updates = list(self.client.iter_incident_updates(incident_id=event.incident_id))
        except APIRejected:
            return []
        return [
            {
                "severity_id": u.new_severity.id if u.new_severity else None,
                "incident_status_id": u.new_incident_status.id,
            }
            for u in updates
            if u.created_at >= event.claimed_at
        ]


# What incident updates record: an edit of these shows in the updates even after a human
# undid it. Anything else (custom fields) leaves no trace once overwritten.
RECORDED_IN_UPDATES = frozenset({"severity_id", "incident_status_id"})


def unrecorded_edit_overwritten(
    body: Mapping[str, Any], incident: Incident, claimed_at: datetime
) -> bool:
    """Could an edit the incident does not show have landed and been changed back since?

    For a field the updates do not record, the only trace is that the incident changed
    after the claim. Then releasing the claim could re-apply an edit a human undid, so
    reconcile leaves it instead (at worst one edit that never landed is not retried).
    """
    edited = set(body.get("incident", {}))
    return bool(edited - RECORDED_IN_UPDATES) and incident.updated_at >= claimed_at


def edit_visible(
    body: Mapping[str, Any], incident: Incident, updates: Sequence[Mapping[str, Any]]
) -> bool:
    """Did this edit body land? Checked on the incident now, or in the updates since the claim."""
    wanted = body.get("incident", {})
    if not wanted:
        return False
    for key, value in wanted.items():
        if key == "severity_id":
            ok = (incident.severity is not None and incident.severity.id == value) or any(
                u.get("severity_id") == value for u in updates
            )
        elif key == "incident_status_id":
            ok = incident.incident_status.id == value or any(
                u.get("incident_status_id") == value for u in updates
            )
        elif key == "custom_field_entries":
            ok = all(
                sorted(v.get("value_option_id", "") for v in entry["values"])
                == sorted(incident.custom_field_option_ids(entry["custom_field_id"]))
                for entry in value
            )
        else:
            ok = getattr(incident, key, None) == value
        if not ok:
            return False
    return True
