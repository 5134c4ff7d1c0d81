"""Who is on call when: shifts from a schedule's rotations and overrides, at any instant.

A rotation hands over every ``interval`` hours, days or weeks from
``handover_start_at``: the first user takes the first shift, the next user
the next one, cycling through the list (ScheduleRotationV2). Daily and weekly
handovers keep the schedule's wall-clock time across daylight saving changes
(a Monday 09:00 London handover stays at 09:00 local); hourly ones are plain
UTC arithmetic. The cadence extends backwards before ``handover_start_at``
too, so any sandbox clock finds someone on call.

An override replaces the rotation's user for its time range; ``final`` is
the scheduled shifts with the overrides laid over them. Everything is
computed lazily, in start order, from an instant: a window of any length
costs only the entries read from it, and ``current_shifts`` and
``schedule_entries.final`` come from the same generator, so they cannot
disagree.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count, takewhile
from zoneinfo import ZoneInfo

HANDOVER_DAYS = {"daily": 1, "weekly": 7}
INTERVAL_TYPES = ("hourly", "daily", "weekly")


@dataclass(frozen=True)
class Rotation:
    """One rotation with one layer (one person on call at a time)."""

    id: str
    name: str
    layer_id: str
    layer_name: str
    user_ids: tuple[str, ...]
    handover_start_at: datetime
    interval: int
    interval_type: str  # hourly | daily | weekly

    def __post_init__(self) -> None:
        if not self.user_ids or self.interval < 1 or self.interval_type not in INTERVAL_TYPES:
            raise ValueError(f"rotation {self.name!r} needs users and a positive cadence")

    def shift_start(self, index: int, zone: ZoneInfo) -> datetime:
        """When shift ``index`` begins (shift 0 begins at handover_start_at)."""
        if self.interval_type == "hourly":
            return self.handover_start_at + timedelta(hours=self.interval * index)
        days = HANDOVER_DAYS[self.interval_type] * self.interval * index
        wall = self.handover_start_at.astimezone(zone).replace(tzinfo=None) + timedelta(days=days)
        return wall.replace(tzinfo=zone).astimezone(UTC)

    def shift_at(self, at: datetime, zone: ZoneInfo) -> int:
        """The index of the shift running at ``at``."""
        nominal = timedelta(hours=self.interval)
        if self.interval_type != "hourly":
            nominal = timedelta(days=HANDOVER_DAYS[self.interval_type] * self.interval)
        index = (at - self.handover_start_at) // nominal
        while self.shift_start(index, zone) > at:  # a DST hour can put the guess one off
            index -= 1
        while self.shift_start(index + 1, zone) <= at:
            index += 1
        return index


@dataclass(frozen=True)
class Override:
    """Someone else covers a rotation's layer from ``start_at`` to ``end_at``."""

    id: str
    rotation_id: str
    user_id: str
    start_at: datetime
    end_at: datetime


@dataclass(frozen=True)
class Schedule:
    id: str
    name: str
    timezone: str
    rotations: tuple[Rotation, ...]
    overrides: tuple[Override, ...]
    created_at: datetime
    team_ids: tuple[str, ...] = ()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, order=True)
class Entry:
    """A shift as ScheduleEntryV2 describes it; ``entry_id`` only for stored overrides."""

    start_at: datetime
    end_at: datetime
    user_id: str
    rotation_id: str
    layer_id: str
    entry_id: str | None = None

    def fingerprint(self, schedule_id: str) -> str:
        """A stable identifier for this shift, the same in every response that shows it."""
        text = "|".join(
            (schedule_id, self.rotation_id, self.layer_id, self.user_id,
             self.start_at.isoformat(), self.end_at.isoformat())
        )  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()[:26].upper()


def scheduled(schedule: Schedule, rotation: Rotation, start: datetime) -> Iterator[Entry]:
    """The rotation's shifts from the one running at ``start`` onwards (endless)."""
    zone = schedule.zone
    first = rotation.shift_at(start, zone)
    for index in count(first):
        begins, ends = rotation.shift_start(index, zone), rotation.shift_start(index + 1, zone)
        user = rotation.user_ids[index % len(rotation.user_ids)]
        yield Entry(begins, ends, user, rotation.id, rotation.layer_id)


def _final(schedule: Schedule, rotation: Rotation, start: datetime) -> Iterator[Entry]:
    """The rotation's shifts with its overrides laid over them, in start order (endless).

    Each override comes once, with the shift it starts in (or the first shift,
    if it started earlier); the parts of a shift it does not cover stay the
    rotation's.
    """
    overrides = sorted(
        (o for o in schedule.overrides if o.rotation_id == rotation.id and o.end_at > start),
        key=lambda o: o.start_at,
    )
    first = True
    for shift in scheduled(schedule, rotation, start):
        batch: list[Entry] = []
        cursor = shift.start_at
        for override in overrides:
            started_earlier = first and override.start_at < shift.start_at
            if started_earlier or shift.start_at <= override.start_at < shift.end_at:
                batch.append(
                    Entry(override.start_at, override.end_at, override.user_id,
                          rotation.id, rotation.layer_id, override.id)
                )  # fmt: skip
            if override.end_at <= cursor or override.start_at >= shift.end_at:
                continue
            if override.start_at > cursor:
                batch.append(_piece(shift, cursor, override.start_at))
            cursor = max(cursor, override.end_at)
        if cursor < shift.end_at:
            batch.append(_piece(shift, cursor, shift.end_at))
        first = False
        yield from sorted(batch)


def _piece(shift: Entry, start: datetime, end: datetime) -> Entry:
    return Entry(start, end, shift.user_id, shift.rotation_id, shift.layer_id)


def _merged(streams: Iterable[Iterator[Entry]], start: datetime, end: datetime) -> Iterator[Entry]:
    """Entries of every stream that overlap ``[start, end)``, in start order."""
    merged = heapq.merge(*streams, key=lambda e: e.start_at)
    return (e for e in takewhile(lambda e: e.start_at < end, merged) if e.end_at > start)


def final_entries(schedule: Schedule, start: datetime, end: datetime) -> Iterator[Entry]:
    """Who is actually on call during ``[start, end)``, every rotation, in start order."""
    streams = (_final(schedule, r, start) for r in schedule.rotations)
    return _merged(streams, start, end)


def scheduled_entries(schedule: Schedule, start: datetime, end: datetime) -> Iterator[Entry]:
    """What the rotations alone say for ``[start, end)``, before overrides."""
    return _merged((scheduled(schedule, r, start) for r in schedule.rotations), start, end)


def override_entries(schedule: Schedule, start: datetime, end: datetime) -> list[Entry]:
    rotations = {r.id: r for r in schedule.rotations}
    return sorted(
        Entry(o.start_at, o.end_at, o.user_id, o.rotation_id, rotations[o.rotation_id].layer_id,
              o.id)
        for o in schedule.overrides
        if o.start_at < end and o.end_at > start
    )  # fmt: skip


def current_shifts(schedule: Schedule, at: datetime) -> list[Entry]:
    """The final entries running at ``at``: one per rotation layer."""
    return list(final_entries(schedule, at, at + timedelta(microseconds=1)))


def next_shifts(schedule: Schedule, at: datetime) -> list[Entry]:
    """The final entries running just after the next changeover."""
    current = current_shifts(schedule, at)
    if not current:
        return []
    return current_shifts(schedule, min(e.end_at for e in current))
