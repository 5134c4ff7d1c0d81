"""Typed views of on-call resources: schedules and their shifts, escalation paths, escalations.

Tolerant like models.py: unknown keys are kept, enum-like values are plain
``str`` (compare with the ``StrEnum``s), and only what the product reads is
required, so a key the API adds or drops tomorrow does not fail a page.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from automations.incidentio.models import (
    Actor,
    NamedRef,
    User,
    UTCDateTime,
    _Resource,
)


class EscalationStatus(StrEnum):
    """Where an escalation is (section 0); the API may add values."""

    PENDING = "pending"
    TRIGGERED = "triggered"
    ACKED = "acked"
    RESOLVED = "resolved"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    DELAYED = "delayed"
    PENDING_REPEAT = "pending_repeat"
    SNOOZED = "snoozed"


class EscalationPathKind(StrEnum):
    STANDALONE = "standalone"
    TEMPLATED = "templated"


# --- schedules -------------------------------------------------------------------


class ScheduleEntry(_Resource):
    """One shift: who is on call from ``start_at`` to ``end_at``.

    ``fingerprint`` identifies the shift across responses (a computed shift has
    no ``entry_id``; only stored overrides do).
    """

    start_at: UTCDateTime
    end_at: UTCDateTime
    user: User | None = None
    entry_id: str | None = None
    fingerprint: str | None = None
    rotation_id: str | None = None
    layer_id: str | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        """What makes two copies of an entry the same shift (a page boundary repeats one)."""
        if self.fingerprint:
            return (self.fingerprint,)
        user = self.user.id if self.user is not None else None
        return (self.start_at, self.end_at, user, self.rotation_id, self.layer_id)


class ScheduleHandover(_Resource):
    interval: int = 1
    interval_type: str = ""  # hourly | daily | weekly


class ScheduleRotation(_Resource):
    id: str
    name: str = ""
    handover_start_at: UTCDateTime | None = None
    effective_from: UTCDateTime | None = None
    handovers: tuple[ScheduleHandover, ...] = ()
    layers: tuple[NamedRef, ...] = ()
    users: tuple[User, ...] = ()


class ScheduleConfig(_Resource):
    rotations: tuple[ScheduleRotation, ...] = ()


class Schedule(_Resource):
    """A schedule (ScheduleV2); ``current_shifts`` answers "who is on call now"."""

    id: str
    name: str
    timezone: str = "UTC"
    permalink: str | None = None
    team_ids: tuple[str, ...] = ()
    annotations: dict[str, str] = {}
    created_at: UTCDateTime | None = None
    updated_at: UTCDateTime | None = None
    config: ScheduleConfig | None = None
    current_shifts: tuple[ScheduleEntry, ...] = ()
    next_shifts: tuple[ScheduleEntry, ...] = ()

    @property
    def on_call(self) -> tuple[User, ...]:
        """The users on call now (one per rotation layer), each once."""
        seen: dict[str, User] = {}
        for shift in self.current_shifts:
            if shift.user is not None:
                seen.setdefault(shift.user.id, shift.user)
        return tuple(seen.values())


class ScheduleEntries(_Resource):
    scheduled: tuple[ScheduleEntry, ...] = ()
    overrides: tuple[ScheduleEntry, ...] = ()
    final: tuple[ScheduleEntry, ...] = ()


class AfterPaginationMeta(_Resource):
    """The schedule entries' cursor: resend with ``entry_window_start=<after>``."""

    after: str | None = None
    after_url: str | None = None


class ScheduleEntriesPage(_Resource):
    schedule_entries: ScheduleEntries
    pagination_meta: AfterPaginationMeta | None = None


# --- escalation paths and escalations ---------------------------------------------


class EscalationPathTarget(_Resource):
    id: str
    type: str  # schedule | user | slack_channel | msteams_channel
    urgency: str = "high"
    schedule_mode: str | None = None


class EscalationPathLevel(_Resource):
    targets: tuple[EscalationPathTarget, ...] = ()
    time_to_ack_seconds: int | None = None


class EscalationPathNode(_Resource):
    """One node; ``type`` says which of ``level``, ``repeat``... is set (others stay raw)."""

    id: str
    type: str
    level: EscalationPathLevel | None = None


class EscalationPath(_Resource):
    """An escalation path (EscalationPathV2); ``current_responders`` are paged first now."""

    id: str
    name: str
    kind: str = EscalationPathKind.STANDALONE
    path: tuple[EscalationPathNode, ...] = ()
    team_ids: tuple[str, ...] = ()
    current_responders: tuple[User, ...] = ()


class EscalationEvent(_Resource):
    id: str
    event: str
    occurred_at: UTCDateTime
    urgency: str | None = None
    users: tuple[User, ...] = ()


class RelatedIncident(_Resource):
    """IncidentSlimV2; its ``status_category`` says ``active`` and ``post-incident``."""

    id: str
    reference: str = ""
    name: str = ""
    status_category: str = ""


class Escalation(_Resource):
    """A page sent to people (EscalationV2)."""

    id: str
    title: str
    status: str
    description: str = ""
    escalation_path_id: str | None = None
    creator: Actor | None = None
    events: tuple[EscalationEvent, ...] = ()
    related_incidents: tuple[RelatedIncident, ...] = ()
    created_at: UTCDateTime
    updated_at: UTCDateTime | None = None

    @property
    def notified(self) -> tuple[User, ...]:
        """Everyone the escalation's events say were notified, each once."""
        seen: dict[str, User] = {}
        for event in self.events:
            for user in event.users:
                seen.setdefault(user.id, user)
        return tuple(seen.values())
