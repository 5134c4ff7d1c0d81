"""The reads behind the on-call section, and the names checked when the digests are set up.

One ``GET /v2/schedules`` listing (page_size 25: the largest page that still carries
``next_shifts``, so the next handover needs no more requests); one
``GET /v2/schedule_entries`` only for a shown schedule with nobody on call and no
next shift listed. A section that cannot be read (on-call not enabled: 403 or
404; the API down) becomes a line in the digest, logged once: a digest is never
lost to an optional section.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from automations.digest.oncall import (
    OnCall,
    build_oncall,
    find_schedule,
    needs_entries,
    select_schedules,
    unavailable,
)
from automations.errors import APIError, Problems, UnknownName

if TYPE_CHECKING:
    from automations.digest.config import DigestOptions
    from automations.incidentio import IncidentIOClient
    from automations.incidentio.oncall import Schedule

log = logging.getLogger(__name__)

SCHEDULES_PAGE = 25  # larger pages leave next_shifts out
LOOK_AHEAD = timedelta(days=14)  # how far to look for the next shift of an empty schedule
ENTRIES_WANTED = 25  # the first entries ahead are enough: one page

T = TypeVar("T")


def list_schedules(client: IncidentIOClient) -> list[Schedule]:
    return list(client.iter_schedules(page_size=SCHEDULES_PAGE))


def read_oncall(client: IncidentIOClient, wanted: Sequence[str], now: datetime) -> OnCall:
    """The section for ``wanted`` (schedule IDs or names; empty: all). Raises APIError."""
    schedules = list_schedules(client)
    chosen, _missing = select_schedules(schedules, wanted)
    upcoming = {
        s.id: list(
            islice(client.iter_schedule_entries(s.id, now, now + LOOK_AHEAD), ENTRIES_WANTED)
        )
        for s in chosen
        if needs_entries(s, now)
    }
    return build_oncall(schedules, now, wanted, upcoming)


def guarded(
    read: Callable[[], T],
    fallback: Callable[[APIError], T],
    *,
    digest: str,
    section: str,
    warned: set[tuple[str, str, int | None]],
) -> T:
    """``read()``, or ``fallback(error)`` when the API fails; each failure (digest, section,
    status) is a warning once, later repeats are debug lines."""
    try:
        return read()
    except APIError as exc:
        key = (digest, section, exc.status)
        level = logging.DEBUG if key in warned else logging.WARNING
        warned.add(key)
        what = "digest %s: the %s section could not be read; the digest goes out without it: %s"
        log.log(level, what, digest, section, exc)
        return fallback(exc)


def oncall_section(
    client: IncidentIOClient,
    options: DigestOptions,
    wanted: Sequence[str],
    now: datetime,
    warned: set[tuple[str, str, int | None]],
) -> OnCall:
    """The on-call section of one digest, a line saying why when it cannot be read."""
    return guarded(
        lambda: read_oncall(client, wanted, now),
        unavailable,
        digest=options.name,
        section="on-call",
        warned=warned,
    )


def resolve_schedules(
    path: Path | None,
    client: IncidentIOClient,
    digests: Iterable[tuple[int, DigestOptions]],
) -> dict[str, tuple[str, ...]]:
    """Each digest's ``schedules`` as IDs, read with one listing for all digests.

    An unknown name is a ConfigError naming ``digests[i].schedules[j]`` and the known
    schedules. When the API cannot list them (on-call not enabled, the API down), the
    names are kept as written and the digest says on-call could not be read.
    """
    named = [(i, o) for i, o in digests if o.schedules and "oncall" in o.sections]
    if not named:
        return {}
    try:
        schedules = list_schedules(client)
    except APIError as exc:
        log.warning(
            "on-call schedules cannot be listed now, so their names are not checked: %s", exc
        )
        return {o.name: o.schedules for _, o in named}
    problems = Problems()
    resolved = {}
    known = sorted(s.name for s in schedules)
    for index, options in named:
        ids = []
        for j, name in enumerate(options.schedules):
            found = find_schedule(schedules, name)
            if found is None:
                problems.add(
                    UnknownName("schedule", name, known, f"digests[{index}].schedules[{j}]")
                )
            else:
                ids.append(found.id)
        resolved[options.name] = tuple(ids)
    problems.raise_if_any(path)
    return resolved
