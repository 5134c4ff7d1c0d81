"""In-memory state: the clock, incidents in response order, updates and follow-ups.

Listing 10,000 incidents page by page must stay cheap, so the store keeps the
incidents sorted newest first, remembers each one's position, caches rendered
JSON per incident and caches the positions matching each distinct filter until
the next mutation. A page is then a bisect plus a slice.

Every mutation goes through the store's writing methods, so the store also
notes what changed (``Changes``) until someone takes the list: the webhook
sender turns it into incident.io's events after each request.
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from automations.sandbox.catalog import Catalog
from automations.sandbox.model import JSON, FollowUp, IdFactory, Incident, IncidentUpdate
from automations.sandbox.render import render_incident
from automations.sandbox.seed.catalog import ID_BASE_MS
from automations.sandbox.seed.incidents import History

_MATCH_CACHE_SIZE = 128


class Clock:
    """Sandbox time: real UTC now plus an offset, so moving it ages every incident."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)

    def set(self, now: datetime) -> None:
        self.offset = now - datetime.now(UTC)


@dataclass
class Changes:
    """What changed since the last ``Store.take_changes()``: IDs in the order they changed.

    ``updated`` maps an incident to its status before its first change, so a
    request that moves it twice still reports where it started.
    """

    created: dict[str, None] = field(default_factory=dict)
    updated: dict[str, str] = field(default_factory=dict)
    updates: list[IncidentUpdate] = field(default_factory=list)
    follow_ups_created: dict[str, None] = field(default_factory=dict)
    follow_ups_updated: dict[str, None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.created
            or self.updated
            or self.updates
            or self.follow_ups_created
            or self.follow_ups_updated
        )


@dataclass(frozen=True)
class Page:
    incidents: list[Incident]
    more: bool
    total: int


class UnknownCursor(LookupError):
    """``after`` names an incident the store does not have."""


class Store:
    def __init__(self, catalog: Catalog, history: History, seed: int) -> None:
        self.catalog = catalog
        self.new_id = IdFactory(random.Random(f"sandbox:runtime:{seed}"), ID_BASE_MS + 2**40)
        self._order: list[Incident] = []
        self._position: dict[str, int] = {}
        self._by_number: dict[int, Incident] = {}
        self._rendered: dict[str, JSON] = {}
        self._matches: dict[Hashable, list[int]] = {}
        self.idempotency: dict[str, str] = {}
        self.updates: list[IncidentUpdate] = sorted(
            history.updates, key=lambda u: u.created_at, reverse=True
        )
        self.follow_ups: list[FollowUp] = history.follow_ups
        self._order = list(history.incidents)
        self._reindex()
        # each incident's status as last reported by take_changes (its "previous_status")
        self._reported_status = {incident.id: incident.status_id for incident in self._order}
        self._changes = Changes()

    # -- reading --

    def __len__(self) -> int:
        return len(self._order)

    def get(self, ref: str) -> Incident | None:
        """By full ID or by the numeric part of the reference (``123`` for INC-123)."""
        position = self._position.get(ref)
        if position is not None:
            return self._order[position]
        if ref.isdigit():
            return self._by_number.get(int(ref))
        return None

    def follow_up(self, follow_up_id: str) -> FollowUp | None:
        return next((f for f in self.follow_ups if f.id == follow_up_id), None)

    def all(self) -> list[Incident]:
        """Newest first; do not mutate the list."""
        return self._order

    def render(self, incident: Incident) -> JSON:
        """The cached IncidentV2 JSON; callers must copy before changing it."""
        body = self._rendered.get(incident.id)
        if body is None:
            body = self._rendered[incident.id] = render_incident(incident, self.catalog)
        return body

    def page(
        self,
        key: Hashable,
        predicate: Callable[[Incident], bool],
        after: str | None,
        size: int,
        newest_first: bool,
    ) -> Page:
        """One page of the incidents matching ``predicate`` (cached under ``key``).

        ``after`` is located in the full order, not among the matches, so a
        cursor whose incident stopped matching between pages still works.
        """
        matches = self._matches.get(key)
        if matches is None:
            if len(self._matches) >= _MATCH_CACHE_SIZE:
                self._matches.clear()
            matches = [i for i, incident in enumerate(self._order) if predicate(incident)]
            self._matches[key] = matches
        cursor: int | None = None
        if after is not None:
            cursor = self._position.get(after)
            if cursor is None:
                raise UnknownCursor(after)
        if newest_first:
            start = 0 if cursor is None else bisect_right(matches, cursor)
            chosen = matches[start : start + size]
            more = start + size < len(matches)
        else:
            end = len(matches) if cursor is None else bisect_left(matches, cursor)
            begin = max(0, end - size)
            chosen = matches[begin:end][::-1]
            more = begin > 0
        return Page([self._order[i] for i in chosen], more, len(matches))

    # -- writing: every mutation goes through add() or touch() so caches stay right --

    def add(self, incident: Incident) -> None:
        self._order.append(incident)
        self._reindex()
        self._changes.created[incident.id] = None

    def touch(self, incident: Incident, *, reorder: bool = False) -> None:
        """Call after changing ``incident``; ``reorder`` when created_at changed."""
        self._forget_rendered(incident)
        if reorder:
            self._reindex()
        if incident.id not in self._changes.created:
            before = self._reported_status.get(incident.id, incident.status_id)
            self._changes.updated.setdefault(incident.id, before)

    def add_follow_ups(self, follow_ups: list[FollowUp]) -> None:
        self.follow_ups.extend(follow_ups)
        self._changes.follow_ups_created.update(dict.fromkeys(f.id for f in follow_ups))

    def follow_up_changed(self, follow_up: FollowUp, incident: Incident | None) -> None:
        """Call after changing ``follow_up`` (and its incident's last activity).

        The incident's cached JSON is dropped, but the change is the follow-up's:
        it is not reported as an update of the incident.
        """
        if incident is not None:
            self._forget_rendered(incident)
        if follow_up.id not in self._changes.follow_ups_created:
            self._changes.follow_ups_updated[follow_up.id] = None

    def take_changes(self) -> Changes:
        """What changed since the last call; the next call starts empty."""
        changes, self._changes = self._changes, Changes()
        for incident_id in [*changes.created, *changes.updated]:
            incident = self.get(incident_id)
            if incident is not None:
                self._reported_status[incident_id] = incident.status_id
        return changes

    def _forget_rendered(self, incident: Incident) -> None:
        self._rendered.pop(incident.id, None)
        self._matches.clear()

    def next_number(self) -> int:
        return max(self._by_number, default=0) + 1

    def add_update(self, update: IncidentUpdate) -> None:
        # newest first; an update is almost always the newest, so insert near the front
        index = 0
        while index < len(self.updates) and self.updates[index].created_at > update.created_at:
            index += 1
        self.updates.insert(index, update)
        self._changes.updates.append(update)

    def _reindex(self) -> None:
        # Timsort is linear on the nearly sorted list an append leaves behind.
        self._order.sort(key=lambda i: (i.created_at, i.number), reverse=True)
        self._position = {incident.id: i for i, incident in enumerate(self._order)}
        self._by_number = {incident.number: incident for incident in self._order}
        self._matches.clear()
