"""The query of ``GET /v3/follow_ups`` (docs/incident-io-api.md section 0), as the API reads it.

``/v2/follow_ups`` is removed on 31 December 2026; v3 pages by follow-up ID
(oldest first, at most 250 a page) and filters on ``incident_id``,
``incident_mode`` (one mode; without it, standard and retrospective only),
``assignee_team_id`` and ``created_at`` / ``updated_at`` windows
(``updated_at[gte]=2026-01-01T00:00:00Z``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from automations.incidentio.filters import IncidentFilter

FOLLOW_UP_MODES = ("standard", "retrospective", "test", "tutorial", "stream")
# What the API lists when no incident_mode is given.
DEFAULT_FOLLOW_UP_MODES = frozenset({"standard", "retrospective"})
MAX_FOLLOW_UP_PAGE_SIZE = 250

When = date | datetime


@dataclass(frozen=True)
class TimeWindow:
    """A ``created_at`` or ``updated_at`` filter: any of ``gte``, ``lte``, ``date_range``.

    Dates are whole days (midnight UTC); datetimes must be timezone-aware and are
    sent in UTC, so ``updated_at[gte]`` can follow an incremental sync to the second.
    """

    gte: When | None = None
    lte: When | None = None
    date_range: tuple[When, When] | None = None

    def params(self, name: str) -> list[tuple[str, str]]:
        out = []
        if self.gte is not None:
            out.append((f"{name}[gte]", _encode(self.gte, f"{name}[gte]")))
        if self.lte is not None:
            out.append((f"{name}[lte]", _encode(self.lte, f"{name}[lte]")))
        if self.date_range is not None:
            key = f"{name}[date_range]"
            if not isinstance(self.date_range, tuple | list) or len(self.date_range) != 2:
                raise ValueError(f"{key}: give (start, end)")
            start, end = (_encode(value, key) for value in self.date_range)
            out.append((key, f"{start}~{end}"))
        if not out:
            raise ValueError(f"{name}: give at least one of gte, lte, date_range")
        return out


def _encode(value: When, what: str) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{what}: {value!r} has no timezone; give an aware datetime")
        text = value.astimezone(UTC).isoformat()
        return text.removesuffix("+00:00") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    raise ValueError(f"{what}: expected a date or datetime, got {value!r}")


def follow_up_params(
    *,
    incident_id: str | None = None,
    incident_mode: str | None = None,
    assignee_team_id: str | None = None,
    created_at: TimeWindow | None = None,
    updated_at: TimeWindow | None = None,
) -> list[tuple[str, str]]:
    """The filter pairs, in a fixed order (IDs are checked by the client)."""
    params: list[tuple[str, str]] = []
    if incident_id is not None:
        params.append(("incident_id", incident_id))
    if incident_mode is not None:
        if incident_mode not in FOLLOW_UP_MODES:
            raise ValueError(f"incident_mode must be one of {', '.join(FOLLOW_UP_MODES)}")
        params.append(("incident_mode", incident_mode))
    if assignee_team_id is not None:
        params.append(("assignee_team_id", assignee_team_id))
    if created_at is not None:
        params += created_at.params("created_at")
    if updated_at is not None:
        params += updated_at.params("updated_at")
    return params


def listing_mode(incident_mode: str) -> str | None:
    """The ``incident_mode`` to send to list an incident's follow-ups: none for the default
    modes (one listing covers standard and retrospective), else the mode itself."""
    return None if incident_mode in DEFAULT_FOLLOW_UP_MODES else incident_mode


def listing_modes(queries: Iterable[IncidentFilter]) -> list[str | None]:
    """The ``incident_mode`` of each listing that together cover every incident ``queries`` can
    return: None (the API's default: standard and retrospective) and each other mode, once.

    A query without a mode filter gets standard and retrospective incidents (the
    mode is a scope the API always applies), so the default listing covers it.
    """
    modes: set[str] = set()
    for query in queries:
        chosen = next((c.values for c in query.conditions if c.param == "mode"), None)
        modes.update(chosen or DEFAULT_FOLLOW_UP_MODES)
    listings = {listing_mode(mode) for mode in modes}
    return sorted(listings, key=lambda mode: (mode is not None, mode or ""))
