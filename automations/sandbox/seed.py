"""A realistic organisation and incident history, identical for the same seed.

Every random choice comes from ``random.Random`` instances derived from the
seed (never the global generator), and IDs do not depend on the wall clock.
Incident times are offsets from ``anchor`` (the sandbox clock at reset), so
pass a fixed ``now`` to reset when byte-identical output matters.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from automations.sandbox.catalog import Catalog
from automations.sandbox.model import (
    JSON,
    CustomField,
    DurationMetric,
    FollowUp,
    FollowUpPriority,
    IdFactory,
    Incident,
    IncidentType,
    IncidentUpdate,
    Option,
    Role,
    Severity,
    Status,
    Team,
    Timestamp,
    User,
    user_actor,
)
from automations.sandbox.oncall import EscalationPath, Level, OnCall, Target
from automations.sandbox.rotations import Override, Rotation, Schedule

CATALOG_CREATED = datetime(2023, 1, 10, 9, 30, tzinfo=UTC)
ID_BASE_MS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
MIN_AGE_S = 120.0
MAX_AGE_S = 180 * 86400.0
# The history's shape: a few incidents from today, most from the last eight weeks (so a
# digest's trends have something to show), the rest older.
YOUNG_SHARE = 0.05
TREND_SHARE = 0.75
TREND_DAYS = 57  # 8 weeks and a day: whatever the weekday, the 8 weeks shown are covered
WEEK_WEIGHTS = (1.0, 1.5, 0.7, 1.2, 2.0, 0.9, 1.4, 0.8, 1.1)  # by week back from now
QUIET_DAYS = (2, 3)  # days back, modulo 7
QUIET_DAY_WEIGHT = 0.35
# Time to resolve: log-uniform from RESOLVE_MIN to RESOLVE_MAX (median about 3 hours),
# shorter for an incident too young to have taken that long.
RESOLVE_MIN_S = 15 * 60.0
RESOLVE_MAX_S = 2.5 * 86400.0

USER_NAMES = (
    "Alice Chen", "Ben Okafor", "Carla Mendes", "Dev Patel", "Elena Petrova",
    "Farah Haddad", "George Whitfield", "Hana Sato", "Ivan Novak", "Julia Romano",
    "Kwame Mensah", "Lena Fischer", "Marco Silva", "Nadia Rahman", "Oliver Grant",
    "Priya Nair", "Quentin Moreau", "Rosa Jimenez", "Sam Taylor", "Tomasz Kowalski",
    "Uma Iyer", "Victor Lindqvist", "Wen Li", "Yusuf Demir", "Zoe Campbell",
)  # fmt: skip
SERVICES = (
    "checkout", "payments-api", "auth", "search", "notifications",
    "ledger", "billing", "api-gateway", "web-frontend", "reporting",
)  # fmt: skip
REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-2", "eu-central-1", "us-west-2")
PLATFORMS = ("iOS", "Android", "web")
NAME_TEMPLATES = (
    "Checkout latency spike in {region}",
    "{Service} latency spike in {region}",
    "Elevated 5xx errors from {service}",
    "{Service} unavailable for some customers",
    "Payment authorisations failing in {region}",
    "Login timeouts on {platform}",
    "Database connection pool exhausted on {service}",
    "Webhook deliveries delayed for {service}",
    "Push notifications not delivered on {platform}",
    "Queue backlog growing in {service}",
    "Memory leak in {service} workers",
    "Partial outage of {service} in {region}",
    "Dashboard slow to load for enterprise customers",
    "Nightly data export stuck in {service}",
    "DNS resolution failures in {region}",
    "Stale cache serving outdated prices",
    "Search index lagging behind writes",
    "Card payments double-charged for some users",
)
SECURITY_TEMPLATES = (
    "Suspicious login attempts against admin accounts",
    "Leaked API token found in a public repository",
    "Unexpected IAM policy change in {region}",
    "Phishing campaign targeting staff",
)
SUMMARIES = (
    "Customers report errors and timeouts; {service} dashboards show the spike.",
    "Alerts fired for {service} in {region}; impact is still being assessed.",
    "Support tickets are rising. A recent deploy of {service} is suspected.",
    "Error budget burn on {service} is above the paging threshold.",
)
FOLLOW_UP_TITLES = (
    "Add alerting on {service} error rate",
    "Write a runbook for {service} failover",
    "Increase connection pool size for {service}",
    "Add a load test for the checkout path",
    "Review the on-call escalation policy",
    "Backfill missing data in {service}",
    "Rotate credentials for {service}",
    "Add dashboards for {region} traffic",
    "Document the rollback procedure for {service}",
    "Fix the flaky health check on {service}",
)
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
ISSUE_PROVIDERS = ("linear", "jira", "github")
PHASES = ("Triage", "Active", "Post-incident", "Closed", "Declined", "Merged", "Canceled", "Paused")
PHASE_OF_CATEGORY = {
    "triage": "Triage",
    "live": "Active",
    "learning": "Post-incident",
    "closed": "Closed",
    "declined": "Declined",
    "merged": "Merged",
    "canceled": "Canceled",
    "paused": "Paused",
}
# Category weights by incident age: young incidents are mostly open, old ones mostly done.
WEIGHTED_CATEGORIES = (
    "triage", "live", "learning", "closed", "declined", "merged", "canceled", "paused",
)  # fmt: skip
CATEGORY_WEIGHTS: tuple[tuple[float, tuple[int, ...]], ...] = (
    (2 * 3600, (30, 60, 5, 3, 1, 0, 1, 0)),
    (86400, (10, 38, 20, 20, 4, 2, 2, 3)),
    (14 * 86400, (4, 12, 30, 42, 5, 3, 2, 2)),
    (math.inf, (2, 4, 20, 62, 5, 3, 2, 2)),
)


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


@dataclass
class History:
    incidents: list[Incident]
    updates: list[IncidentUpdate]
    follow_ups: list[FollowUp]


class _Generator:
    """Builds one incident at a time; split out so each step reads on its own."""

    def __init__(self, seed: int, catalog: Catalog, anchor: datetime) -> None:
        self.rng = _rng(seed, "incidents")
        # Choices added later draw from their own generator, so the history stays what it was.
        self.extras = _rng(seed, "incident-extras")
        self.new_id = IdFactory(self.rng, ID_BASE_MS)
        self.catalog = catalog
        self.anchor = anchor
        self.history = History([], [], [])
        c = catalog
        self.ts = {t.name: t.id for t in c.timestamps}
        self.team = c.field_named("Team")
        self.service_field = c.field_named("Affected service")
        self.phase = c.field_named("Phase")
        self.lead = c.role_of_type("lead").id
        self.reporter = c.role_of_type("reporter").id
        self.comms = c.role_of_type("custom").id
        self.security = next(t for t in c.types if t.private_incidents_only)

    def _fill(self, template: str) -> str:
        service = self.rng.choice(SERVICES)
        return template.format(
            service=service,
            Service=service[0].upper() + service[1:],
            region=self.rng.choice(REGIONS),
            platform=self.rng.choice(PLATFORMS),
        )

    def _between(self, start: datetime, end: datetime) -> datetime:
        return start + (end - start) * self.rng.random() if end > start else start

    def incident(self, number: int, age_s: float, forced: dict[str, str]) -> None:
        rng, c = self.rng, self.catalog
        created = self.anchor - timedelta(seconds=age_s)
        weights = next(w for limit, w in CATEGORY_WEIGHTS if age_s < limit)
        category = forced.get("category") or rng.choices(WEIGHTED_CATEGORIES, weights)[0]
        status = rng.choice(c.statuses_in(category))
        severity: Severity | None = rng.choices(c.severities, (50, 35, 15))[0]
        if category == "triage" and rng.random() < 0.5:
            severity = None
        itype: IncidentType = rng.choices(c.types, (70, 10, 20))[0]
        mode = forced.get("mode") or rng.choices(("standard", "test", "tutorial"), (97, 2, 1))[0]
        if mode == "standard" and category in ("learning", "closed") and rng.random() < 0.04:
            mode = "retrospective"
        private = itype.private_incidents_only or rng.random() < 0.06
        private = private or forced.get("visibility") == "private"
        template = rng.choice(SECURITY_TEMPLATES if itype is self.security else NAME_TEMPLATES)
        name = self._fill(template)
        users = c.active_users
        creator_user = rng.choice(users)
        kind = rng.random()
        creator: JSON = user_actor(creator_user)
        if kind < 0.1:
            creator = {"alert": {"id": self.new_id(), "title": f"[FIRING] {name}"}}
        elif kind < 0.15:
            creator = {"workflow": {"id": self.new_id(), "name": "Auto-declare from alerts"}}

        incident = Incident(
            id=self.new_id(),
            number=number,
            name=name,
            status_id=status.id,
            visibility="private" if private else "public",
            mode=mode,
            creator=creator,
            created_at=created,
            updated_at=created,
            severity_id=severity.id if severity else None,
            type_id=itype.id,
        )
        if rng.random() < 0.7:
            incident.summary = self._fill(rng.choice(SUMMARIES))
        if age_s > 600 or category != "triage":
            incident.slack_channel_id = _slack_id(rng, "C0")
            slug = "".join(ch if ch.isalnum() else "-" for ch in name.lower())[:40].strip("-")
            incident.slack_channel_name = f"inc-{number}-{slug}"

        # roles
        incident.roles[self.reporter] = creator_user.id
        lead_chance = {"live": 0.85, "triage": 0.3, "learning": 0.95, "closed": 0.95}
        lead_user = rng.choice(users)
        if rng.random() < lead_chance.get(category, 0.5):
            incident.roles[self.lead] = lead_user.id
        if severity is not None and severity.rank >= 2 and rng.random() < 0.3:
            incident.roles[self.comms] = rng.choice(users).id

        # custom fields
        if rng.random() < 0.8:
            option = rng.choice(self.team.options)
            incident.custom_fields[self.team.id] = (option.id,)
            owner = c.team_named(option.value)
            incident.team_ids = (owner.id,) if owner else ()
        if rng.random() < 0.6:
            incident.custom_fields[self.service_field.id] = (rng.choice(SERVICES),)
        if rng.random() < 0.4:
            phase_value = PHASE_OF_CATEGORY[category]
            option = next(o for o in self.phase.options if o.value == phase_value)
            incident.custom_fields[self.phase.id] = (option.id,)

        self._lifecycle(incident, category, severity, lead_user, age_s)
        postmortem_chance = {"learning": 0.4, "closed": 0.6}.get(category, 0.02)
        if rng.random() < postmortem_chance:
            incident.postmortem_document_url = f"https://docs.example.com/postmortems/inc-{number}"
        if category == "live" and rng.random() < 0.5:
            incident.call_url = f"https://meet.example.com/inc-{number}"
        if category in ("learning", "closed") and rng.random() < 0.6:
            self._follow_ups(incident, category)
        self.history.incidents.append(incident)

    def _lifecycle(
        self,
        incident: Incident,
        category: str,
        severity: Severity | None,
        lead: User,
        age_s: float,
    ) -> None:
        """Timestamps, updated_at and the incident updates that got it to its status."""
        rng, c, ts, now = self.rng, self.catalog, self.ts, self.anchor
        created = incident.created_at
        incident.timestamps[ts["Reported at"]] = created
        if category != "triage" or rng.random() < 0.6:
            impact = created - timedelta(minutes=rng.uniform(1, 180))
            incident.timestamps[ts["Impact started"]] = impact
        updater = user_actor(lead)
        sev_id = severity.id if severity else None
        last = created

        def update(at: datetime, status_id: str, with_severity: bool = False) -> None:
            self.history.updates.append(
                IncidentUpdate(
                    self.new_id(),
                    incident.id,
                    status_id,
                    updater,
                    at,
                    sev_id if with_severity else None,
                )
            )

        if category in ("live", "learning", "closed", "paused", "merged"):
            accepted = min(created + timedelta(minutes=rng.uniform(1, 30)), now)
            accepted = max(accepted, created)
            incident.timestamps[ts["Accepted at"]] = accepted
            update(accepted, c.first_status("live").id, with_severity=True)
            last = accepted
        if category in ("learning", "closed"):
            took = min(_log_uniform(rng.random(), RESOLVE_MIN_S, RESOLVE_MAX_S), age_s * 0.8)
            resolved = max(created + timedelta(seconds=took), last)
            incident.timestamps[ts["Resolved at"]] = resolved
            update(resolved, c.first_status("learning").id)
            last = resolved
            if category == "closed":
                closed = self._between(resolved, now)
                incident.timestamps[ts["Closed at"]] = closed
                update(closed, incident.status_id)
                last = closed
        elif category in ("live", "paused", "declined", "merged", "canceled"):
            at = self._between(last, now)
            if incident.status_id != c.first_status("live").id:
                update(at, incident.status_id)
            last = at
        incident.updated_at = self._between(last, min(now, last + timedelta(hours=6)))

    def _follow_ups(self, incident: Incident, category: str) -> None:
        rng = self.rng
        resolved = incident.timestamps[self.ts["Resolved at"]]
        for _ in range(rng.randint(1, 4)):
            if category == "closed":
                status = rng.choices(("completed", "not_doing", "outstanding"), (80, 10, 10))[0]
            else:
                status = rng.choices(("outstanding", "completed"), (55, 45))[0]
            created = self._between(resolved, self.anchor)
            updated = self._between(created, self.anchor)
            assignee = rng.choice(self.catalog.active_users)
            follow_up = FollowUp(
                id=self.new_id(),
                incident_id=incident.id,
                title=self._fill(rng.choice(FOLLOW_UP_TITLES)),
                status=status,
                creator=user_actor(rng.choice(self.catalog.active_users)),
                created_at=created,
                updated_at=updated,
                assignee_id=assignee.id if rng.random() < 0.8 else None,
                completed_at=updated if status == "completed" else None,
                labels=("postmortem",) if rng.random() < 0.3 else (),
            )
            self._follow_up_extras(follow_up, incident)
            self.history.follow_ups.append(follow_up)

    def _follow_up_extras(self, follow_up: FollowUp, incident: Incident) -> None:
        """The v3 attributes: the owning team, a priority and category, sometimes a ticket."""
        extras, catalog = self.extras, self.catalog
        if incident.team_ids and extras.random() < 0.7:
            follow_up.assignee_team_id = incident.team_ids[0]
        if extras.random() < 0.6:
            follow_up.priority_id = extras.choice(catalog.follow_up_priorities).id
        if extras.random() < 0.5:
            follow_up.category_id = extras.choice(catalog.follow_up_categories).id
        if extras.random() < 0.3:
            provider = extras.choice(ISSUE_PROVIDERS)
            name = f"OPS-{extras.randint(100, 9999)}"
            follow_up.external_issue = {
                "issue_name": name,
                "issue_permalink": f"https://{provider}.example.com/sandbox/issue/{name}",
                "provider": provider,
            }


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


def _log_uniform(position: float, low: float, high: float) -> float:
    return math.exp(math.log(low) + position * (math.log(high) - math.log(low)))


def _day_weights() -> list[float]:
    """How busy each of the last TREND_DAYS days was (day 1 = yesterday): some weeks are
    busier than others, and two days in seven are quiet. Counted back from the sandbox's
    now, never from its weekday: the history (and its IDs) must not depend on the clock."""
    return [
        WEEK_WEIGHTS[day // 7] * (QUIET_DAY_WEIGHT if day % 7 in QUIET_DAYS else 1.0)
        for day in range(1, TREND_DAYS)
    ]


def history_ages(rng: random.Random, count: int) -> list[float]:
    """Incident ages in seconds, oldest first: a few from today (the youngest minutes old),
    most from the last eight weeks at a varied daily rate, the rest up to 180 days old.

    Three draws per incident, whichever share it falls in, so the rest of the
    history draws the same numbers whatever the shares.
    """
    days = _day_weights()
    total = sum(days)
    ages = []
    for _ in range(count):
        share, first, second = rng.random(), rng.random(), rng.random()
        if share < YOUNG_SHARE:
            ages.append(_log_uniform(first, MIN_AGE_S, 86400.0))
        elif share < YOUNG_SHARE + TREND_SHARE:
            point, day = first * total, 0
            while day < len(days) - 1 and point >= days[day]:
                point -= days[day]
                day += 1
            ages.append((day + 1 + second) * 86400.0)
        else:
            ages.append(_log_uniform(first, TREND_DAYS * 86400.0, MAX_AGE_S))
    return sorted(ages, reverse=True)


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


# --- on-call: schedules and escalation paths ------------------------------------

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
