"""Who is on call: for each schedule, the people on call now and the next handover. Pure.

Built from the schedules the API lists (``current_shifts`` and, with page_size
<= 25, ``next_shifts``) and ``now``, so it is tested without a server. The next
handover is the earliest end of a current shift; with nobody on call, the start
of the next shift (from ``next_shifts`` or, when the API sent none, the schedule
entries the fetch read ahead). People are shown by name, never by email address
when they have a name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from automations.digest.content import safe_link
from automations.errors import APIError
from automations.incidentio.models import User
from automations.incidentio.oncall import Schedule, ScheduleEntry
from automations.text import one_line

PERSON_LIMIT = 80
SCHEDULE_LIMIT = 120


def person_name(user: User | None) -> str:
    """A person as a digest names them: their name, else their email address, else their ID."""
    if user is None:
        return "Unknown person"
    return one_line(user.name or user.email or user.id, PERSON_LIMIT) or "Unknown person"


@dataclass(frozen=True)
class OnCallPerson:
    """Someone on call; ``rotation`` only when the schedule has several (Primary, Shadow)."""

    name: str
    rotation: str | None = None


@dataclass(frozen=True)
class ScheduleRow:
    """One schedule: who is on call, when that changes and who comes next."""

    name: str
    link: str | None
    people: tuple[OnCallPerson, ...]  # empty: nobody is on call
    handover_at: datetime | None  # None: no change known
    handover_in: timedelta | None
    next_people: tuple[OnCallPerson, ...]  # whose shifts start at the handover


@dataclass(frozen=True)
class OnCall:
    """The on-call section; ``unavailable`` says why it could not be read (the digest still
    goes out)."""

    schedules: tuple[ScheduleRow, ...] = ()
    missing: tuple[str, ...] = ()  # configured schedules the organisation no longer has
    unavailable: str | None = None


def unavailable(exc: APIError) -> OnCall:
    """The section when the schedules API failed: a line for the readers, no detail."""
    return OnCall(unavailable=api_failure(exc))


def api_failure(exc: APIError) -> str:
    """'incident.io answered HTTP 403' or 'incident.io did not answer': for readers, not
    operators (the log has the detail)."""
    if exc.status is None:
        return "incident.io did not answer"
    return f"incident.io answered HTTP {exc.status}"


# --- which schedules ---------------------------------------------------------------------


def select_schedules(
    schedules: Sequence[Schedule], wanted: Sequence[str]
) -> tuple[list[Schedule], list[str]]:
    """The schedules ``wanted`` names (ID, exact name, or name in any case if that is
    unambiguous), in that order, and the names that match none. Empty: all, by name."""
    if not wanted:
        return sorted(schedules, key=lambda s: (s.name.casefold(), s.id)), []
    chosen: list[Schedule] = []
    missing: list[str] = []
    for name in wanted:
        found = find_schedule(schedules, name)
        if found is None:
            missing.append(name)
        elif found not in chosen:
            chosen.append(found)
    return chosen, missing


def find_schedule(schedules: Sequence[Schedule], name: str) -> Schedule | None:
    """By ID, else by exact name, else by name in any case; None when none (or several) match."""
    for found in (
        [s for s in schedules if s.id == name],
        [s for s in schedules if s.name == name],
        [s for s in schedules if s.name.casefold() == name.casefold()],
    ):
        if len(found) == 1:
            return found[0]
    return None


# --- the section ---------------------------------------------------------------------------


def _people(schedule: Schedule, shifts: Iterable[ScheduleEntry]) -> tuple[OnCallPerson, ...]:
    rotations = schedule.config.rotations if schedule.config else ()
    names = {r.id: one_line(r.name, 60) for r in rotations} if len(rotations) > 1 else {}
    seen: dict[tuple[str, str | None], OnCallPerson] = {}
    for shift in sorted(shifts, key=lambda s: (s.start_at, s.rotation_id or "")):
        if shift.user is None:
            continue
        rotation = names.get(shift.rotation_id or "") or None
        seen.setdefault((shift.user.id, rotation), OnCallPerson(person_name(shift.user), rotation))
    return tuple(seen.values())


def schedule_row(
    schedule: Schedule, now: datetime, upcoming: Sequence[ScheduleEntry] = ()
) -> ScheduleRow:
    """One schedule's row. ``upcoming``: its entries ahead of ``now`` (used when the API sent
    no ``next_shifts``)."""
    current = [s for s in schedule.current_shifts if s.start_at <= now < s.end_at]
    ahead = [s for s in (*schedule.next_shifts, *upcoming) if s.end_at > now]
    handover: datetime | None
    if current:
        handover = min(s.end_at for s in current)
    else:
        handover = min((s.start_at for s in ahead if s.start_at > now), default=None)
    # Who takes over: the shifts that start at the handover (a layer whose shift runs on
    # past it hands nothing over).
    following = [s for s in ahead if s.start_at == handover]
    return ScheduleRow(
        name=one_line(schedule.name, SCHEDULE_LIMIT) or schedule.id,
        link=safe_link(schedule.permalink),
        people=_people(schedule, current),
        handover_at=handover,
        handover_in=None if handover is None else max(handover - now, timedelta(0)),
        next_people=_people(schedule, following),
    )


def build_oncall(
    schedules: Sequence[Schedule],
    now: datetime,
    wanted: Sequence[str] = (),
    upcoming: Mapping[str, Sequence[ScheduleEntry]] | None = None,
) -> OnCall:
    """The section for the schedules ``wanted`` (names or IDs; empty: all)."""
    chosen, missing = select_schedules(schedules, wanted)
    ahead = upcoming or {}
    rows = tuple(schedule_row(s, now, ahead.get(s.id, ())) for s in chosen)
    return OnCall(schedules=rows, missing=tuple(one_line(m, SCHEDULE_LIMIT) for m in missing))


def needs_entries(schedule: Schedule, now: datetime) -> bool:
    """Nobody on call and no next shift in the listing: only the entries say when it changes."""
    current = any(s.start_at <= now < s.end_at for s in schedule.current_shifts)
    return not current and not any(s.start_at > now for s in schedule.next_shifts)
