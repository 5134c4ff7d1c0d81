"""The ledger schema as named migrations, applied in order and recorded once each.

Never edit a migration that has shipped: add a new one, so every existing
ledger file reaches the same schema. Times are ISO 8601 UTC text with
microseconds (``2026-11-23T08:00:00.000000+00:00``), so text order is time
order. Tables are STRICT: a wrong type is an error, not a silent coercion.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATION_SET = "automations"


def build_migrations() -> Migrations:
    """A fresh migration set (no module-level registry, so importing has no side effects)."""
    migrations = Migrations(MIGRATION_SET)

    @migrations(name="0001_events")
    def events(db: Database) -> None:
        # One row per action the automation decided to take, claimed before the side effect.
        db.table("events").create(
            {
                "id": int,
                "rule": str,
                "incident_id": str,
                "incident_reference": str,
                "event_key": str,
                "state": str,  # planned | applied | skipped | failed | reconciled
                "reason": str,
                "request_body": str,  # JSON: the exact edit body sent, or None
                "request_id": str,  # the API's, for support tickets
                "error": str,
                "dry_run": int,
                "claimed_at": str,
                "finished_at": str,
                "attempts": int,
            },
            pk="id",
            not_null=[
                "rule",
                "incident_id",
                "incident_reference",
                "event_key",
                "state",
                "reason",
                "dry_run",
                "claimed_at",
                "attempts",
            ],
            defaults={"dry_run": 0, "attempts": 1},
            strict=True,
        )
        table = db.table("events")
        table.create_index(["event_key"], index_name="events_event_key", unique=True)
        table.create_index(["rule"], index_name="events_rule")
        table.create_index(["incident_reference"], index_name="events_incident_reference")
        table.create_index(["claimed_at"], index_name="events_claimed_at")

    @migrations(name="0002_releases")
    def releases(db: Database) -> None:
        # A released claim is deleted from events so a later cycle may retry it;
        # this remembers how many tries the key has had, for events.attempts.
        db.table("releases").create(
            {"event_key": str, "attempts": int, "released_at": str},
            pk="event_key",
            not_null=["attempts", "released_at"],
            strict=True,
        )

    @migrations(name="0003_runs")
    def runs(db: Database) -> None:
        db.table("runs").create(
            {
                "id": int,
                "schedule": str,
                "started_at": str,
                "finished_at": str,
                "incidents_seen": int,
                "actions_planned": int,
                "actions_applied": int,
                "actions_failed": int,
                "actions_skipped": int,
                "api_requests": int,
                "error": str,
                "status": str,  # running | ok | failed
            },
            pk="id",
            not_null=[
                "schedule",
                "started_at",
                "incidents_seen",
                "actions_planned",
                "actions_applied",
                "actions_failed",
                "actions_skipped",
                "api_requests",
                "status",
            ],
            defaults={
                "incidents_seen": 0,
                "actions_planned": 0,
                "actions_applied": 0,
                "actions_failed": 0,
                "actions_skipped": 0,
                "api_requests": 0,
                "status": "running",
            },
            strict=True,
        )
        db.table("runs").create_index(["schedule", "started_at"], index_name="runs_schedule")

    @migrations(name="0004_catalog")
    def catalog(db: Database) -> None:
        # The last good copy of severities, statuses, ... so a daemon can start offline.
        db.table("catalog").create(
            {"kind": str, "items": str, "fetched_at": str},
            pk="kind",
            not_null=["items", "fetched_at"],
            strict=True,
        )

    @migrations(name="0005_outbox")
    def outbox(db: Database) -> None:
        # Rendered digests wait here until SMTP accepts them (or they expire).
        db.table("outbox").create(
            {
                "id": int,
                "digest": str,
                "period": str,
                "state": str,  # pending | sending | sent | failed | expired
                "subject": str,
                "recipients": str,  # JSON list
                "message": bytes,  # the rendered RFC 5322 message, sent byte for byte
                "message_id": str,
                "attempts": int,
                "next_attempt_at": str,
                "last_error": str,
                "created_at": str,
                "sent_at": str,
                "expires_at": str,
            },
            pk="id",
            not_null=[
                "digest",
                "period",
                "state",
                "subject",
                "recipients",
                "message",
                "message_id",
                "attempts",
                "next_attempt_at",
                "created_at",
                "expires_at",
            ],
            defaults={"attempts": 0},
            strict=True,
        )
        table = db.table("outbox")
        table.create_index(["digest", "period"], index_name="outbox_digest_period", unique=True)
        table.create_index(["state", "next_attempt_at"], index_name="outbox_due")

    @migrations(name="0006_meta")
    def meta(db: Database) -> None:
        # Small facts that outlive a process, e.g. the API clock's offset from the host's.
        db.table("meta").create(
            {"key": str, "value": str}, pk="key", not_null=["value"], strict=True
        )

    @migrations(name="0007_events_incident_name")
    def events_incident_name(db: Database) -> None:
        # `history` shows the incident's name; rows written before this have none.
        db.table("events").add_column("incident_name", str)

    @migrations(name="0008_rearm")
    def rearm(db: Database) -> None:
        # `automations retry` re-arms a failed event: how often, and when last. A released
        # key's row is deleted, so releases carries the count like it carries attempts.
        events = db.table("events")
        events.add_column("rearmed", int, not_null_default=0)
        events.add_column("rearmed_at", str)
        db.table("releases").add_column("rearmed", int, not_null_default=0)

    @migrations(name="0009_run_rules")
    def run_rules(db: Database) -> None:
        # Which rules each cycle evaluated, so `plan` can tell a rule that never ran.
        db.table("run_rules").create(
            {"run_id": int, "rule": str},
            pk=("run_id", "rule"),
            foreign_keys=[("run_id", "runs", "id")],
            strict=True,
        )
        db.table("run_rules").create_index(["rule"], index_name="run_rules_rule")

    @migrations(name="0010_outbox_recipients")
    def outbox_recipients(db: Database) -> None:
        # Per recipient: accepted by the server (never sent again) or refused for good (5xx,
        # reported); the rest is retried. NULL is an empty list / object.
        table = db.table("outbox")
        table.add_column("accepted", str)  # JSON list
        table.add_column("refused", str)  # JSON object: address -> the server's reply

    @migrations(name="0011_outbox_lease")
    def outbox_lease(db: Database) -> None:
        # A sending row belongs to one sender until lease_until; after that (a crash) anyone
        # may claim it again.
        table = db.table("outbox")
        table.add_column("owner", str)
        table.add_column("lease_until", str)

    @migrations(name="0012_owners_quarantine")
    def owners_quarantine(db: Database) -> None:
        # Which process claimed an event or started a run (host:pid:token, see owners.py), so
        # another process never settles a claim or closes a run of one that is still alive.
        db.table("events").add_column("owner", str)
        db.table("runs").add_column("owner", str)
        # Every cycle looks for unconfirmed claims first: find them without a full scan.
        db.execute("CREATE INDEX events_planned ON events (claimed_at, id) WHERE state = 'planned'")
        # A row that cannot be decoded is copied here as it was and reported once; an event
        # row stays in events (state quarantined) so its key stays taken.
        db.table("quarantine").create(
            {
                "id": int,
                "source": str,  # the table: events | runs | outbox
                "source_id": int,
                "event_key": str,  # events only
                "row": str,  # JSON of the row as read, for a person to repair
                "error": str,
                "quarantined_at": str,
            },
            pk="id",
            not_null=["source", "source_id", "row", "error", "quarantined_at"],
            strict=True,
        )
        db.table("quarantine").create_index(
            ["source", "source_id"], index_name="quarantine_source", unique=True
        )

    @migrations(name="0013_safety")
    def safety(db: Database) -> None:
        # The daily cap counts a rule's edits of the last 24 h: a range on this index, not a
        # scan of the rule's every event. Retention groups events by incident.
        events = db.table("events")
        events.create_index(["rule", "finished_at"], index_name="events_rule_finished_at")
        events.create_index(["incident_id"], index_name="events_incident_id")
        # Retention forgets re-armed events by age: few, found without a scan.
        db.execute("CREATE INDEX events_rearmed ON events (claimed_at) WHERE state = 'rearmed'")
        # Retention looks for old runs by time alone.
        db.table("runs").create_index(["started_at"], index_name="runs_started_at")
        # Incidents retention asked the API about and had to keep (still open, or still in
        # a rule's query): asked again only after a while.
        db.table("retention_checks").create(
            {"incident_id": str, "checked_at": str},
            pk="incident_id",
            not_null=["checked_at"],
            strict=True,
        )

    @migrations(name="0014_notifications")
    def notifications(db: Database) -> None:
        # What the claim says to announce once applied (automations.notify.spec.NotifySpec as
        # JSON); NULL: nothing.
        db.table("events").add_column("notify", str)
        # One row per (event, channel), inserted in the transaction that records the action
        # as applied or reconciled; delivered under a lease like the digest outbox.
        db.table("notifications").create(
            {
                "id": int,
                "event_key": str,  # the event's (a summary: summary/<channel>/<first held id>)
                "channel": str,
                "notice": str,  # JSON of automations.notify.notice.Notice
                # queued | sending | sent | failed | expired | held | summarised | quarantined
                "state": str,
                "attempts": int,
                "next_attempt_at": str,
                "created_at": str,
                "sent_at": str,
                "last_error": str,
                "owner": str,  # the sender holding the lease, while sending
                "lease_until": str,
            },
            pk="id",
            not_null=[
                "event_key",
                "channel",
                "notice",
                "state",
                "attempts",
                "next_attempt_at",
                "created_at",
            ],
            defaults={"attempts": 0},
            strict=True,
        )
        table = db.table("notifications")
        table.create_index(
            ["event_key", "channel"], index_name="notifications_event_channel", unique=True
        )
        table.create_index(["state", "next_attempt_at"], index_name="notifications_due")
        # max_per_hour counts a channel's sends of the last hour: a range on this index.
        table.create_index(["channel", "state", "sent_at"], index_name="notifications_channel")
        # `history --notifications` (newest first) and retention (by age).
        table.create_index(["created_at"], index_name="notifications_created_at")

    @migrations(name="0015_webhook_deliveries")
    def webhook_deliveries(db: Database) -> None:
        # One row per verified incident.io delivery, keyed by its webhook-id (stable across
        # the sender's retries: a retry or replay finds the row and is processed once). The
        # body is not kept: every event re-reads its incident from the API.
        db.table("webhook_deliveries").create(
            {
                "id": int,
                "webhook_id": str,
                "event_type": str,
                "incident_id": str,  # NULL until known (a private follow-up event names only it)
                "follow_up_id": str,  # follow-up events only
                "state": str,  # queued | processed | failed
                "attempts": int,  # processing attempts that could not finish (API unreachable)
                "received_at": str,
                "next_attempt_at": str,
                "finished_at": str,
                "last_error": str,
            },
            pk="id",
            not_null=[
                "webhook_id",
                "event_type",
                "state",
                "attempts",
                "received_at",
                "next_attempt_at",
            ],
            defaults={"attempts": 0},
            strict=True,
        )
        table = db.table("webhook_deliveries")
        table.create_index(["webhook_id"], index_name="webhook_deliveries_webhook_id", unique=True)
        table.create_index(["state", "next_attempt_at"], index_name="webhook_deliveries_due")
        table.create_index(["received_at"], index_name="webhook_deliveries_received_at")

    @migrations(name="0016_event_kinds")
    def event_kinds(db: Database) -> None:
        # What a digest needs to phrase a change and to decide who may see it, as the rule
        # saw it at claim time: the action's kind ("escalate", "status", "mirror", "notice",
        # a plugin's own) and details (JSON: {"from": ..., "to": ..., "step": ...}), and the
        # incident's visibility (1 private, 0 public) and mode. NULL on older rows: unknown
        # (a digest then falls back to the edit body, and counts the incident as private).
        events = db.table("events")
        events.add_column("kind", str)
        events.add_column("details", str)
        events.add_column("incident_private", int)
        events.add_column("incident_mode", str)

    return migrations
