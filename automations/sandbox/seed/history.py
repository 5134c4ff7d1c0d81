"""The seeded incident history: INC-1 the oldest, every category present, recent follow-ups.

``build_history`` ages the incidents (``ages``), forces one of each category
across them, builds each one (``incidents``), then gives the latest resolved
ones an outstanding follow-up so a digest always has some to show.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from automations.sandbox.catalog import Catalog
from automations.sandbox.model import FollowUp, IdFactory, user_actor
from automations.sandbox.seed.ages import history_ages
from automations.sandbox.seed.catalog import ID_BASE_MS, _rng
from automations.sandbox.seed.incidents import (
    FOLLOW_UP_TITLES,
    REGIONS,
    SERVICES,
    History,
    _Generator,
)


def _forced(count: int) -> dict[int, dict[str, str]]:
    """Spread one incident of every category (and a test, a tutorial and a private live one)
    across the ages."""
    if count < 12:
        return {}
    categories = (
        "triage",
        "live",
        "learning",
        "closed",
        "declined",
        "merged",
        "canceled",
        "paused",
    )
    forced: dict[int, dict[str, str]] = {}
    for k, category in enumerate(categories):
        forced[(k * count) // len(categories) + count // 20] = {
            "category": category,
            "mode": "standard",
        }
    # A private live incident, whatever the draws: digests must be seen to leave it out.
    forced[count - 8] = {"category": "live", "mode": "standard", "visibility": "private"}
    forced.setdefault(count - 2, {})["mode"] = "test"
    forced.setdefault(count - 5, {})["mode"] = "tutorial"
    return forced


def build_history(seed: int, count: int, catalog: Catalog, anchor: datetime) -> History:
    """``count`` incidents, INC-1 the oldest, 2 minutes to 180 days old (``history_ages``)."""
    generator = _Generator(seed, catalog, anchor)
    ages = history_ages(generator.rng, count)
    forced = _forced(count)
    for index, age in enumerate(ages):
        generator.incident(index + 1, age, forced.get(index, {}))
    add_recent_follow_ups(seed, generator.history, catalog, anchor)
    return generator.history


# --- the digest's follow-ups: work left after the last week's incidents -------------------

RECENT_SPAN = timedelta(days=7)
RECENT_FOLLOW_UPS = 6  # incidents given one


def add_recent_follow_ups(seed: int, history: History, catalog: Catalog, anchor: datetime) -> None:
    """An outstanding follow-up on the latest incidents resolved in the last week (public and
    private alike) that have none, so a digest's follow-ups section has something to show
    (and something to hide) whatever the draws. Its own random stream and IDs (after the
    seeded ones, before any made at run time): every other seeded value stays what it was.
    """
    rng = _rng(seed, "recent-follow-ups")
    new_id = IdFactory(rng, ID_BASE_MS + 2**39)
    resolved_id = next(t.id for t in catalog.timestamps if t.name == "Resolved at")
    open_on = {f.incident_id for f in history.follow_ups if f.status == "outstanding"}
    resolved_statuses = {s.id for s in catalog.statuses if s.category in ("learning", "closed")}
    recent = sorted(
        (
            i
            for i in history.incidents
            if i.status_id in resolved_statuses
            and i.mode == "standard"
            and i.id not in open_on
            and anchor - RECENT_SPAN <= i.timestamps.get(resolved_id, anchor - 2 * RECENT_SPAN)
        ),
        key=lambda i: i.timestamps[resolved_id],
        reverse=True,
    )[:RECENT_FOLLOW_UPS]
    people = catalog.active_users
    for incident in sorted(recent, key=lambda i: i.timestamps[resolved_id]):
        resolved = incident.timestamps[resolved_id]
        created = resolved + (anchor - resolved) * rng.uniform(0.05, 0.6)
        service = rng.choice(SERVICES)
        follow_up = FollowUp(
            id=new_id(),
            incident_id=incident.id,
            title=rng.choice(FOLLOW_UP_TITLES).format(
                service=service,
                Service=service[0].upper() + service[1:],
                region=rng.choice(REGIONS),
            ),
            status="outstanding",
            creator=user_actor(rng.choice(people)),
            created_at=created,
            updated_at=created,
            assignee_id=rng.choice(people).id if rng.random() < 0.7 else None,
        )
        if follow_up.assignee_id is None and incident.team_ids and rng.random() < 0.7:
            follow_up.assignee_team_id = incident.team_ids[0]
        if rng.random() < 0.6:
            follow_up.priority_id = rng.choice(catalog.follow_up_priorities).id
        history.follow_ups.append(follow_up)
