"""Follow-ups: ``/v3/follow_ups`` (section 0) and ``/v2/follow_ups`` until its removal date.

v3 lists follow-ups in ID order, oldest first, ``page_size`` 1..250 (default
25), ``after`` a follow-up ID. Like the real API, ``pagination_meta.after`` is
set whenever a page is full, because there *may* be more: a listing whose last
page is exactly full ends with one empty page. Filters: ``incident_id`` (ID or
reference number), ``incident_mode`` (one mode; without it, standard and
retrospective only), ``assignee_team_id``, and ``created_at`` / ``updated_at``
with ``gte``, ``lte`` and ``date_range`` (dates or RFC3339 timestamps).

``/v2/follow_ups`` (and ``/{id}``) answer until 2026-12-31T00:00:00Z on the
sandbox clock, then 404 like every route the API does not have.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from automations.sandbox.errors import SandboxErrorResponse, found, invalid
from automations.sandbox.filters import (
    DEFAULT_MODES,
    MAX_PAGE_SIZE,
    Window,
    in_window,
    parse_page_size,
    scalar_params,
    time_windows,
)
from automations.sandbox.model import FOLLOW_UP_MODES, JSON, FollowUp
from automations.sandbox.render import render_follow_up, render_follow_up_v3
from automations.sandbox.store import Store

V2_REMOVED_AT = datetime(2026, 12, 31, tzinfo=UTC)
V3_SCALARS = ("page_size", "after", "incident_id", "incident_mode", "assignee_team_id")
V2_SCALARS = ("incident_id", "incident_mode")
_TIME_KEY = re.compile(r"^(created_at|updated_at)\[(gte|lte|date_range)\]$")

FollowUpPredicate = Callable[[FollowUp], bool]


def _in_windows(attr: str, windows: Sequence[Window]) -> FollowUpPredicate:
    return lambda follow_up: all(in_window(getattr(follow_up, attr), *w) for w in windows)


def _filters(
    store: Store, params: dict[str, str], times: list[FollowUpPredicate]
) -> FollowUpPredicate:
    """incident, mode, team and time filters AND-ed, as one predicate."""
    mode = params.get("incident_mode")
    if mode is not None and mode not in FOLLOW_UP_MODES:
        raise invalid("incident_mode", f"incident_mode must be one of {', '.join(FOLLOW_UP_MODES)}")
    modes = frozenset({mode}) if mode else DEFAULT_MODES
    incident_id = params.get("incident_id") or None
    if incident_id is not None:
        found = store.get(incident_id)
        incident_id = found.id if found else incident_id
    team = params.get("assignee_team_id") or None

    def predicate(follow_up: FollowUp) -> bool:
        if incident_id is not None and follow_up.incident_id != incident_id:
            return False
        if team is not None and follow_up.assignee_team_id != team:
            return False
        incident = store.get(follow_up.incident_id)
        if incident is None or incident.mode not in modes:
            return False
        return all(check(follow_up) for check in times)

    return predicate


def list_v3(store: Store, pairs: Sequence[tuple[str, str]]) -> JSON:
    """``GET /v3/follow_ups``: one page in ID order and its ``pagination_meta``."""
    scalars, times = [], []
    for key, value in pairs:
        match = _TIME_KEY.match(key)
        if match is None:
            scalars.append((key, value))
        else:
            times.append(_in_windows(match.group(1), time_windows(key, match.group(2), [value])))
    params = scalar_params(scalars, V3_SCALARS)
    size = parse_page_size(params.get("page_size"), MAX_PAGE_SIZE)
    predicate = _filters(store, params, times)
    after = params.get("after") or None
    chosen: list[FollowUp] = []
    for follow_up in sorted(store.follow_ups, key=lambda f: f.id):
        if (after is None or follow_up.id > after) and predicate(follow_up):
            chosen.append(follow_up)
            if len(chosen) == size:
                break
    meta: JSON = {"page_size": size}
    if len(chosen) == size:
        meta["after"] = chosen[-1].id  # there may be more: the next page can be empty
    rendered = [render_follow_up_v3(f, store.catalog) for f in chosen]
    return {"follow_ups": rendered, "pagination_meta": meta}


def show_v3(store: Store, follow_up_id: str) -> JSON:
    return {"follow_up": render_follow_up_v3(_one(store, follow_up_id), store.catalog)}


def list_v2(store: Store, pairs: Sequence[tuple[str, str]], now: datetime) -> JSON:
    """``GET /v2/follow_ups``: every match at once, in creation order, until its removal."""
    _still_served(now)
    predicate = _filters(store, scalar_params(pairs, V2_SCALARS), [])
    chosen = [f for f in store.follow_ups if predicate(f)]
    return {"follow_ups": [render_follow_up(f, store.catalog) for f in chosen]}


def show_v2(store: Store, follow_up_id: str, now: datetime) -> JSON:
    _still_served(now)
    return {"follow_up": render_follow_up(_one(store, follow_up_id), store.catalog)}


def _still_served(now: datetime) -> None:
    if now >= V2_REMOVED_AT:
        raise SandboxErrorResponse(404, "not_found", "Not found")


def _one(store: Store, follow_up_id: str) -> FollowUp:
    return found(store.follow_up(follow_up_id), "follow-up", follow_up_id)
