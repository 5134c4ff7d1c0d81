"""One seeded incident at a time: its status, severity, roles, fields, lifecycle and follow-ups.

``_Generator`` draws each incident's attributes from the seed's ``incidents``
stream (later additions from ``incident-extras``, so older draws stay what
they were) and appends it, its updates and follow-ups to a ``History``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from automations.sandbox.catalog import Catalog
from automations.sandbox.model import (
    JSON,
    FollowUp,
    IdFactory,
    Incident,
    IncidentType,
    IncidentUpdate,
    Severity,
    User,
    user_actor,
)
from automations.sandbox.seed.ages import _log_uniform
from automations.sandbox.seed.catalog import ID_BASE_MS, _rng, _slack_id

# Time to resolve: log-uniform from RESOLVE_MIN to RESOLVE_MAX (median about 3 hours),
# shorter for an incident too young to have taken that long.
RESOLVE_MIN_S = 15 * 60.0
RESOLVE_MAX_S = 2.5 * 86400.0

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
ISSUE_PROVIDERS = ("linear", "jira", "github")
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
