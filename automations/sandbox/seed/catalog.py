"""The seeded organisation: severities, statuses, types, roles, fields, users and teams.

The same for a seed, whatever the clock says. Also home of what every seeded
part shares: ``_rng`` (one random stream per purpose, derived from the seed)
and ``ID_BASE_MS`` (the instant seeded IDs count from).
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime

from automations.sandbox.catalog import Catalog
from automations.sandbox.model import (
    CustomField,
    DurationMetric,
    FollowUpPriority,
    IdFactory,
    IncidentType,
    Option,
    Role,
    Severity,
    Status,
    Team,
    Timestamp,
    User,
)

CATALOG_CREATED = datetime(2023, 1, 10, 9, 30, tzinfo=UTC)
ID_BASE_MS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)

USER_NAMES = (
    "Alice Chen", "Ben Okafor", "Carla Mendes", "Dev Patel", "Elena Petrova",
    "Farah Haddad", "George Whitfield", "Hana Sato", "Ivan Novak", "Julia Romano",
    "Kwame Mensah", "Lena Fischer", "Marco Silva", "Nadia Rahman", "Oliver Grant",
    "Priya Nair", "Quentin Moreau", "Rosa Jimenez", "Sam Taylor", "Tomasz Kowalski",
    "Uma Iyer", "Victor Lindqvist", "Wen Li", "Yusuf Demir", "Zoe Campbell",
)  # fmt: skip
TEAMS = ("Payments", "Platform", "Mobile", "Data")
# People who have left: they still appear on old incidents, never on new ones.
INACTIVE_USER_NAMES = ("Xavier Brooks", "Ingrid Holm", "Pavel Sokolov")
FOLLOW_UP_PRIORITIES = (
    ("Low", 10, "Do it when there is time."),
    ("High", 20, "Do it this sprint."),
    ("Urgent", 30, "Do it before anything else."),
)
FOLLOW_UP_CATEGORIES = (
    ("Infrastructure", 10, "Follow-ups that change infrastructure."),
    ("Process", 20, "Follow-ups that change how we work."),
    ("Documentation", 30, "Runbooks and write-ups."),
)
PHASES = ("Triage", "Active", "Post-incident", "Closed", "Declined", "Merged", "Canceled", "Paused")


def _rng(seed: int, purpose: str) -> random.Random:
    # str seeds hash with SHA-512, so they are stable across processes
    return random.Random(f"sandbox:{purpose}:{seed}")


def _slack_id(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", k=9))


def build_catalog(seed: int) -> Catalog:
    """The organisation: the same for a seed, whatever the clock says."""
    rng = _rng(seed, "catalog")
    new_id = IdFactory(rng, ID_BASE_MS - 400 * 86400 * 1000)
    at = CATALOG_CREATED
    severities = tuple(
        Severity(new_id(), name, description, rank, at)
        for rank, (name, description) in enumerate(
            (
                ("Minor", "Issues with **low impact**, such as a small group of customers."),
                ("Major", "Issues causing **significant impact**; immediate response needed."),
                ("Critical", "Issues causing **very high impact** to many customers."),
            ),
            start=1,
        )
    )
    status_specs = (
        ("Triage", "triage", "We are working out whether this is an incident."),
        ("Investigating", "live", "We are finding out what is going on."),
        ("Fixing", "live", "We know what is wrong and are fixing it."),
        ("Monitoring", "live", "A fix is in place and we are watching it."),
        ("Documenting", "learning", "Impact is over; we are writing up what happened."),
        ("Closed", "closed", "This incident is complete."),
        ("Declined", "declined", "This was not an incident."),
        ("Merged", "merged", "This incident was merged into another one."),
        ("Canceled", "canceled", "This incident was opened by mistake."),
        ("Paused", "paused", "Work on this incident is paused."),
    )
    statuses = tuple(
        Status(new_id(), name, description, rank, category, at)
        for rank, (name, category, description) in enumerate(status_specs, start=1)
    )
    types = tuple(
        IncidentType(new_id(), name, description, is_default, private_only, at)
        for name, description, is_default, private_only in (
            ("Default", "Anything that is not a more specific type.", True, False),
            ("Security", "Security incidents are always private.", False, True),
            ("Customer-facing", "Customers can see the impact.", False, False),
        )
    )
    roles = (
        Role(
            new_id(),
            "Incident Lead",
            "lead",
            "The person coordinating the incident.",
            "Take point; make sure everyone knows what they are doing.",
            "lead",
            at,
        ),
        Role(
            new_id(),
            "Reporter",
            "reporter",
            "The person who reported the incident.",
            "",  # no instructions: the API still sends the key, empty (section 0)
            "reporter",
            at,
        ),
        Role(
            new_id(),
            "Communications Lead",
            "comms",
            "Keeps customers and staff informed.",
            "Post status page updates every 30 minutes.",
            "custom",
            at,
        ),
    )
    fields = []
    for name, description, field_type, values in (
        ("Team", "The team that owns the affected system.", "single_select", TEAMS),
        ("Affected service", "The service that is degraded.", "text", ()),
        ("Phase", "The lifecycle phase, mirrored from the status.", "single_select", PHASES),
    ):
        field_id = new_id()
        options = tuple(
            Option(new_id(), field_id, value, (i + 1) * 10) for i, value in enumerate(values)
        )
        fields.append(CustomField(field_id, name, description, field_type, options, at))
    timestamps = tuple(
        Timestamp(new_id(), name, rank)
        for rank, name in enumerate(
            ("Reported at", "Impact started", "Accepted at", "Resolved at", "Closed at"), start=1
        )
    )
    user_roles = ["owner"] + ["administrator"] * 3 + ["responder"] * 18 + ["viewer"] * 3
    users = tuple(
        User(
            new_id(),
            name,
            name.lower().replace(" ", ".") + "@example.com",
            _slack_id(rng, "U0"),
            user_roles[i],
            on_call_seat="none" if user_roles[i] == "viewer" or i % 3 == 2 else "full_access",
            response_seat="viewer_only" if user_roles[i] == "viewer" else "full_access",
        )
        for i, name in enumerate(USER_NAMES)
    )
    base_roles = {
        slug: {"id": new_id(), "name": slug.title(), "slug": slug, "description": f"{slug} role"}
        for slug in ("owner", "administrator", "responder", "viewer")
    }
    api_key_id = new_id()
    # Everything below came later: its IDs follow the older ones, which stay what they were.
    teams = tuple(Team(new_id(), name) for name in TEAMS)
    platform = next(t for t in teams if t.name == "Platform")
    types = tuple(
        replace(t, owning_team_ids=(platform.id,)) if t.private_incidents_only else t for t in types
    )
    by_name = {t.name: t.id for t in timestamps}
    duration_metrics = tuple(
        DurationMetric(new_id(), name, by_name[start], by_name[end])
        for name, start, end in (
            ("Time to acknowledge", "Reported at", "Accepted at"),
            ("Duration", "Impact started", "Resolved at"),
        )
    )
    inactive = tuple(
        User(
            new_id(),
            name,
            name.lower().replace(" ", ".") + "@example.com",
            _slack_id(rng, "U0"),
            "responder",
            is_active=False,
            on_call_seat="none",
            response_seat="none",
        )
        for name in INACTIVE_USER_NAMES
    )
    priorities, categories = (
        tuple(FollowUpPriority(new_id(), *spec) for spec in specs)
        for specs in (FOLLOW_UP_PRIORITIES, FOLLOW_UP_CATEGORIES)
    )
    return Catalog(
        api_key_id=api_key_id,
        severities=severities,
        statuses=statuses,
        types=types,
        roles=roles,
        custom_fields=tuple(fields),
        timestamps=timestamps,
        users=users + inactive,
        base_roles=base_roles,
        teams=teams,
        duration_metrics=duration_metrics,
        follow_up_priorities=priorities,
        follow_up_categories=categories,
    )
