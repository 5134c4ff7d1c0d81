"""The seeded on-call setup: three schedules and two escalation paths.

Rotations have fixed handovers, so who is on call depends on the sandbox clock
alone; their own random stream leaves every other seeded ID unchanged.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from automations.sandbox.catalog import Catalog
from automations.sandbox.model import IdFactory
from automations.sandbox.oncall import EscalationPath, Level, OnCall, Target
from automations.sandbox.rotations import Override, Rotation, Schedule
from automations.sandbox.seed.catalog import ID_BASE_MS, TEAMS, _rng

ONCALL_CREATED = datetime(2023, 3, 1, 10, 0, tzinfo=UTC)
# Each rotation's first handover; the cadence runs from there in both directions.
WEEKLY_FROM = datetime(2024, 1, 1, 9, 0, tzinfo=ZoneInfo("Europe/London"))  # a Monday
DAILY_FROM = datetime(2024, 1, 1, 9, 0, tzinfo=ZoneInfo("America/New_York"))
# 07:00/19:00 UTC: never at the same instant as a London Monday 09:00 (08:00 or 09:00 UTC)
HOURLY_FROM = datetime(2024, 1, 1, 7, 0, tzinfo=UTC)


def build_oncall(seed: int, catalog: Catalog, anchor: datetime) -> OnCall:
    """Three schedules and two escalation paths, the same for a seed.

    Handovers are fixed instants (only their cadence matters), so who is on
    call depends on the sandbox clock alone; the one override is placed
    relative to ``anchor`` (tomorrow, six hours), so a test can always reach it.
    Rotations draw from active responders with an on-call seat. Its own random
    stream leaves every other seeded ID unchanged.
    """
    rng = _rng(seed, "oncall")
    new_id = IdFactory(rng, ID_BASE_MS - 300 * 86400 * 1000)
    on_call = [
        u for u in catalog.active_users if u.role == "responder" and u.on_call_seat == "full_access"
    ]
    people = [u.id for u in rng.sample(on_call, 10)]
    admin = next(u.id for u in catalog.active_users if u.role == "administrator")
    teams = {name: (team.id,) for name in TEAMS if (team := catalog.team_named(name))}

    def rotation(name: str, users: list[str], start: datetime, every: int, kind: str) -> Rotation:
        return Rotation(new_id(), name, new_id(), "Layer 1", tuple(users), start, every, kind)

    platform = rotation("Primary", people[0:4], WEEKLY_FROM, 1, "weekly")
    payments = rotation("Primary", people[4:7], DAILY_FROM, 1, "daily")
    data_primary = rotation("Primary", people[7:10], HOURLY_FROM, 12, "hourly")
    data_shadow = rotation("Shadow", people[0:2], WEEKLY_FROM, 1, "weekly")
    cover_from = anchor.replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    cover = Override(new_id(), payments.id, people[7], cover_from, cover_from + timedelta(hours=6))
    schedules = (
        Schedule(
            new_id(),
            "Platform primary",
            "Europe/London",
            (platform,),
            (),
            ONCALL_CREATED,
            teams.get("Platform", ()),
        ),
        Schedule(
            new_id(),
            "Payments on-call",
            "America/New_York",
            (payments,),
            (cover,),
            ONCALL_CREATED,
            teams.get("Payments", ()),
        ),
        Schedule(
            new_id(),
            "Data platform",
            "Europe/Berlin",
            (data_primary, data_shadow),
            (),
            ONCALL_CREATED,
            teams.get("Data", ()),
        ),
    )
    by_name = {s.name: s.id for s in schedules}

    def level(*targets: Target, ack: int) -> Level:
        return Level(new_id(), targets, ack)

    paths = (
        EscalationPath(
            new_id(),
            "Platform primary",
            (
                level(Target("schedule", by_name["Platform primary"]), ack=300),
                level(Target("user", admin), ack=600),
            ),
            new_id(),
            2,
            teams.get("Platform", ()),
        ),
        EscalationPath(
            new_id(),
            "Payments urgent",
            (
                level(
                    Target("schedule", by_name["Payments on-call"]), Target("user", admin), ack=180
                ),
                level(Target("schedule", by_name["Data platform"]), ack=300),
            ),
            new_id(),
            1,
            teams.get("Payments", ()),
        ),
    )
    return OnCall(
        schedules,
        paths,
        IdFactory(random.Random(f"sandbox:oncall-runtime:{seed}"), ID_BASE_MS + 2**41),
    )
