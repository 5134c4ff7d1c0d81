"""Events: claim an action before its side effect, confirm it after.

The unique ``event_key`` (``rule/incident/step``) is what makes an action
happen at most once: ``claim`` is a single INSERT that either creates the row
or finds one already there, whatever its state, across threads and processes.
A claim is PLANNED until it is confirmed: applied, skipped, failed, or
reconciled after a restart. Only a PLANNED claim that provably did not take
effect may be released, so a later cycle can try again. A FAILED event stays
failed until an operator re-arms it (``automations retry``): the row stays,
marked REARMED, and the next claim of the same key takes it over, so the
action still happens at most once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from automations.errors import LedgerError
from automations.ledger.base import Database, Table, current, from_text, maybe_time, to_text
from automations.ledger.notifications import NotificationStore
from automations.ledger.quarantine import Quarantine
from automations.notify.spec import NotifySpec, QueuedNotice

# Keys per lookup: well under SQLite's limit on bound parameters (999 before 3.32).
KEY_BATCH = 500


class EventState(StrEnum):
    """Where a claimed action stands: PLANNED changes once, to an outcome.

    The one way back: a FAILED event re-armed by ``automations retry`` is REARMED,
    which counts as not done, so the rule's next claim of the key makes it PLANNED again.
    """

    PLANNED = "planned"
    APPLIED = "applied"
    SKIPPED = "skipped"
    FAILED = "failed"
    RECONCILED = "reconciled"
    REARMED = "rearmed"
    # The row could not be decoded: copied to ``quarantine``, its key stays taken.
    QUARANTINED = "quarantined"


@dataclass(frozen=True)
class Event:
    """One row of ``events``."""

    id: int
    rule: str
    incident_id: str
    incident_reference: str
    event_key: str
    state: EventState
    reason: str
    request_body: dict[str, Any] | None
    request_id: str | None
    error: str | None
    dry_run: bool
    claimed_at: datetime
    finished_at: datetime | None
    attempts: int
    incident_name: str | None = None  # None on rows written before names were recorded
    rearmed: int = 0  # how many times `automations retry` re-armed it
    rearmed_at: datetime | None = None
    owner: str | None = None  # host:pid:token of the claiming process (owners.py)
    notify: NotifySpec = field(default_factory=NotifySpec)  # to announce once applied
    # As the rule saw it at claim time (migration 0016); None on older rows: unknown.
    kind: str | None = None  # escalate, status, mirror, notice, or a plugin's own
    details: Mapping[str, Any] | None = None  # e.g. {"from": "Major", "to": "Critical"}
    incident_private: bool | None = None
    incident_mode: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Event:
        """Decode the JSON, boolean and time columns; ValueError etc. when they do not decode."""
        body = row["request_body"]
        request_body = None if body is None else json.loads(body)
        if request_body is not None and not isinstance(request_body, dict):
            raise ValueError(f"request_body is JSON {type(request_body).__name__}, not an object")
        return cls(
            id=row["id"],
            rule=row["rule"],
            incident_id=row["incident_id"],
            incident_reference=row["incident_reference"],
            event_key=row["event_key"],
            state=EventState(row["state"]),
            reason=row["reason"],
            request_body=request_body,
            request_id=row["request_id"],
            error=row["error"],
            dry_run=bool(row["dry_run"]),
            claimed_at=from_text(row["claimed_at"]),
            finished_at=maybe_time(row["finished_at"]),
            attempts=row["attempts"],
            incident_name=row["incident_name"],
            rearmed=row["rearmed"],
            rearmed_at=maybe_time(row["rearmed_at"]),
            owner=row.get("owner"),
            notify=NotifySpec()
            if row.get("notify") is None
            else NotifySpec.from_json(row["notify"]),
            kind=row.get("kind"),
            details=_details(row.get("details")),
            incident_private=None
            if row.get("incident_private") is None
            else bool(row["incident_private"]),
            incident_mode=row.get("incident_mode"),
        )

    @classmethod
    def salvage(cls, row: Mapping[str, Any], error: str, at: datetime) -> Event:
        """What can be read of a quarantined row, for ``history``: unreadable parts left out."""

        def text(key: str) -> str:
            value = row.get(key)
            return "" if value is None else str(value)

        def moment(key: str) -> datetime | None:
            try:
                return maybe_time(row.get(key))
            except (ValueError, TypeError):
                return None

        def number(key: str) -> int:
            value = row.get(key)
            return value if isinstance(value, int) else 0

        return cls(
            id=number("id"),
            rule=text("rule"),
            incident_id=text("incident_id"),
            incident_reference=text("incident_reference"),
            event_key=text("event_key"),
            state=EventState.QUARANTINED,
            reason=text("reason"),
            request_body=None,
            request_id=row.get("request_id") if isinstance(row.get("request_id"), str) else None,
            error=error,
            dry_run=bool(row.get("dry_run")),
            claimed_at=moment("claimed_at") or at,
            finished_at=moment("finished_at"),
            attempts=number("attempts"),
            incident_name=text("incident_name") or None,
            rearmed=number("rearmed"),
            rearmed_at=moment("rearmed_at"),
            owner=text("owner") or None,
        )


class EventStore(Table):
    """The ``events`` table (and ``releases``, which carries attempts across a release).

    Recording an action as applied or reconciled also queues its notifications, in the
    same transaction (ledger/notifications.py).
    """

    def __init__(
        self, db: Database, quarantine: Quarantine, notifications: NotificationStore
    ) -> None:
        super().__init__(db)
        self._quarantine = quarantine
        self._notifications = notifications

    def claim(
        self,
        *,
        rule: str,
        incident_id: str,
        incident_reference: str,
        event_key: str,
        reason: str,
        request_body: dict[str, Any] | None,
        incident_name: str | None = None,
        dry_run: bool = False,
        now: datetime | None = None,
        notify: NotifySpec | None = None,
        kind: str | None = None,
        details: Mapping[str, Any] | None = None,
        incident_private: bool | None = None,
        incident_mode: str | None = None,
    ) -> bool:
        """Record the intent before acting; False means the key is already done or in flight.

        ``notify`` (the rule's channels and rendered announce message) is kept on the claim,
        so whoever records the outcome (this cycle, or reconcile after a crash) queues the
        same notifications. A REARMED key is taken over (attempts + 1, the outcome columns
        cleared). ``kind``, ``details`` and the incident's visibility and mode are what a
        digest phrases the change by and decides who may see it by (digest/changes.py).
        """
        params = {
            "rule": rule,
            "incident_id": incident_id,
            "incident_reference": incident_reference,
            "incident_name": incident_name,
            "event_key": event_key,
            "state": EventState.PLANNED.value,
            "reason": reason,
            "request_body": None
            if request_body is None
            else json.dumps(request_body, ensure_ascii=False),
            "dry_run": int(dry_run),
            "claimed_at": to_text(current(now)),
            "owner": self._db.owner,
            "notify": notify.to_json() if notify else None,
            "kind": kind,
            "details": None
            if details is None
            else json.dumps(dict(details), ensure_ascii=False, default=str),
            "incident_private": None if incident_private is None else int(incident_private),
            "incident_mode": incident_mode,
        }
        with self._db.guard(f"claiming event {event_key!r}"):
            changed = self._db.execute(
                """
                INSERT INTO events (rule, incident_id, incident_reference, incident_name,
                                    event_key, state, reason, request_body, dry_run,
                                    claimed_at, owner, notify, kind, details,
                                    incident_private, incident_mode, attempts, rearmed)
                VALUES (:rule, :incident_id, :incident_reference, :incident_name,
                        :event_key, :state, :reason, :request_body, :dry_run, :claimed_at,
                        :owner, :notify, :kind, :details, :incident_private, :incident_mode,
                        1 + coalesce((SELECT attempts FROM releases
                                      WHERE event_key = :event_key), 0),
                        coalesce((SELECT rearmed FROM releases
                                  WHERE event_key = :event_key), 0))
                ON CONFLICT (event_key) DO UPDATE SET
                    state = excluded.state, reason = excluded.reason,
                    request_body = excluded.request_body, dry_run = excluded.dry_run,
                    incident_reference = excluded.incident_reference,
                    incident_name = excluded.incident_name, claimed_at = excluded.claimed_at,
                    owner = excluded.owner, notify = excluded.notify,
                    kind = excluded.kind, details = excluded.details,
                    incident_private = excluded.incident_private,
                    incident_mode = excluded.incident_mode,
                    attempts = events.attempts + 1,
                    request_id = NULL, error = NULL, finished_at = NULL
                WHERE events.state = 'rearmed'
                """,
                params,
            )
            return changed == 1

    def mark_applied(
        self,
        event_key: str,
        *,
        request_id: str | None,
        now: datetime | None = None,
        notices: Sequence[QueuedNotice] = (),
    ) -> None:
        """The API accepted the edit; keep its request id for support. ``notices`` are queued
        in the same transaction (see ``automations.notify.spec.notices_for``)."""
        self._finish(event_key, EventState.APPLIED, now, notices, request_id=request_id)

    def mark_skipped(self, event_key: str, *, reason: str, now: datetime | None = None) -> None:
        """The re-check said no (e.g. a human got there first); the reason replaces the plan's."""
        self._finish(event_key, EventState.SKIPPED, now, reason=reason)

    def mark_failed(self, event_key: str, *, error: str, now: datetime | None = None) -> None:
        """The side effect failed; the key stays taken so it is never retried blindly."""
        self._finish(event_key, EventState.FAILED, now, error=error)

    def mark_reconciled(
        self,
        event_key: str,
        *,
        reason: str,
        now: datetime | None = None,
        notices: Sequence[QueuedNotice] = (),
    ) -> None:
        """After a restart the incident shows the change took effect; the reason says how.
        ``notices`` are queued in the same transaction, as for ``mark_applied``."""
        self._finish(event_key, EventState.RECONCILED, now, notices, reason=reason)

    def _finish(
        self,
        event_key: str,
        state: EventState,
        now: datetime | None,
        notices: Sequence[QueuedNotice] = (),
        **columns: str | None,
    ) -> None:
        """PLANNED -> ``state``, and its notifications queued: both or neither (one transaction;
        a kill -9 between the two statements leaves neither)."""
        for queued in notices:
            if queued.notice.event_key != event_key:
                raise ValueError(
                    f"notice for {queued.notice.event_key!r} cannot be queued with event "
                    f"{event_key!r}"
                )
        assignments = "".join(f", {name} = :{name}" for name in columns)
        moment = current(now)
        params = {
            **columns,
            "event_key": event_key,
            "state": state.value,
            "finished_at": to_text(moment),
        }
        # Without notices the UPDATE alone is atomic: no transaction (two round trips fewer
        # per action on PostgreSQL).
        together = self._db.atomic() if notices else nullcontext()
        with self._db.guard(f"marking event {event_key!r} {state}"), together:
            changed = self._db.execute(
                f"""
                UPDATE events SET state = :state, finished_at = :finished_at{assignments}
                WHERE event_key = :event_key AND state = 'planned'
                """,
                params,
            )
            if changed != 1:
                raise self._not_planned(event_key, f"mark it {state}")
            self._notifications.queue(event_key, notices, moment)

    def release(self, event_key: str, *, now: datetime | None = None) -> None:
        """Delete a PLANNED claim that provably did not take effect, so a later cycle may retry."""
        with self._db.guard(f"releasing event {event_key!r}"), self._db.transaction():
            row = self._db.one(
                "SELECT state, attempts, rearmed FROM events WHERE event_key = ?", [event_key]
            )
            if row is None or row["state"] != EventState.PLANNED:
                raise self._not_planned(event_key, "release it")
            # Still planned when deleted (a writer outside this transaction may have recorded
            # an outcome since the read: see postgres.py).
            deleted = self._db.execute(
                "DELETE FROM events WHERE event_key = ? AND state = 'planned'", [event_key]
            )
            if deleted != 1:
                raise self._not_planned(event_key, "release it")
            self._db.execute(
                """
                INSERT INTO releases (event_key, attempts, rearmed, released_at)
                VALUES (?, ?, ?, ?)
                ON CONFLICT (event_key) DO UPDATE
                SET attempts = excluded.attempts, rearmed = excluded.rearmed,
                    released_at = excluded.released_at
                """,
                [event_key, row["attempts"], row["rearmed"], to_text(current(now))],
            )

    def _not_planned(self, event_key: str, action: str) -> LedgerError:
        row = self._db.one("SELECT state FROM events WHERE event_key = ?", [event_key])
        if row is None:
            return LedgerError(
                f"cannot {action}: event {event_key!r} is not in ledger {self._db.name}"
            )
        return LedgerError(
            f"cannot {action}: event {event_key!r} is already {row['state']} "
            f"in ledger {self._db.name}; only a planned event can change"
        )

    def unconfirmed(self) -> list[Event]:
        """Claims with no outcome (a crash between claim and record), oldest first."""
        with self._db.guard("listing unconfirmed events"):
            rows = self._db.rows(
                "SELECT * FROM events WHERE state = 'planned' ORDER BY claimed_at, id"
            )
        return [e for e in self._decode(rows) if e.state is EventState.PLANNED]

    def get(self, event_key: str) -> Event | None:
        """The event with this key, if it was ever claimed (and not released)."""
        with self._db.guard(f"reading event {event_key!r}"):
            row = self._db.one("SELECT * FROM events WHERE event_key = ?", [event_key])
        return None if row is None else self._decode([row])[0]

    def history(
        self,
        *,
        rule: str | None = None,
        incident: str | None = None,
        since: datetime | None = None,
        states: Iterable[EventState] | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """History, newest first; ``incident`` is an id or a reference like ``INC-123``."""
        where, params = _filters(rule, incident, since, states)
        sql = f"SELECT * FROM events{where} ORDER BY claimed_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT :limit"
            params["limit"] = limit
        with self._db.guard("listing events"):
            rows = self._db.rows(sql, params)
        return self._decode(rows)

    def rearm_failed(
        self,
        *,
        rule: str | None = None,
        incident: str | None = None,
        since: datetime | None = None,
        now: datetime | None = None,
    ) -> list[Event]:
        """Re-arm FAILED events (``automations retry``): their keys count as not done again.

        The next cycle re-checks each one and claims the same key if the rule still
        wants it; returns the re-armed events, oldest first.
        """
        where, params = _filters(rule, incident, since, [EventState.FAILED])
        with self._db.guard("re-arming failed events"), self._db.transaction():
            ids = [r["id"] for r in self._db.rows(f"SELECT id FROM events{where}", params)]
            if not ids:
                return []
            marks = ", ".join("?" for _ in ids)
            self._db.execute(
                f"""
                UPDATE events SET state = ?, rearmed = rearmed + 1, rearmed_at = ?
                WHERE id IN ({marks}) AND state = ?
                """,
                [EventState.REARMED.value, to_text(current(now)), *ids, EventState.FAILED.value],
            )
            rows = self._db.rows(
                f"SELECT * FROM events WHERE id IN ({marks}) ORDER BY claimed_at, id", ids
            )
        return [e for e in self._decode(rows) if e.state is EventState.REARMED]

    def record_baseline(
        self,
        *,
        rule: str,
        incident_id: str,
        incident_reference: str,
        incident_name: str | None,
        event_key: str,
        reason: str,
        request_body: dict[str, Any] | None,
        now: datetime | None = None,
    ) -> bool:
        """Claim a key as SKIPPED in one transaction (``automations adopt``): never acted on.

        False if the key is already taken, whatever its state.
        """
        with self._db.guard(f"recording baseline {event_key!r}"), self._db.transaction():
            claimed = self.claim(
                rule=rule,
                incident_id=incident_id,
                incident_reference=incident_reference,
                incident_name=incident_name,
                event_key=event_key,
                reason=reason,
                request_body=request_body,
                now=now,
            )
            if claimed:
                self.mark_skipped(event_key, reason=reason, now=now)
        return claimed

    def _decode(self, rows: Iterable[Mapping[str, Any]]) -> list[Event]:
        """Each row as an Event; one that does not decode is quarantined in place (its key
        stays taken, so the action is never repeated) and salvaged."""
        return self._quarantine.decode(rows, Event.from_row, self._set_aside)

    def _set_aside(self, row: Mapping[str, Any], exc: BaseException) -> Event:
        event_key = str(row.get("event_key"))
        error = self._quarantine.in_place(
            "events", row, exc, error_column="error", event_key=event_key
        )
        return Event.salvage(row, error, current(None))

    def rules(self) -> set[str]:
        """Every rule name the ledger holds events for (a rule may since have left the config)."""
        with self._db.guard("listing the rules of events"):
            return {row["rule"] for row in self._db.rows("SELECT DISTINCT rule FROM events")}

    def done_keys(self, keys: Iterable[str]) -> set[str]:
        """Those of ``keys`` already in the ledger (done or in flight), so evaluation skips them.

        Only the candidates are looked up, on the unique index, in batches: the cost
        follows the number of candidates, not the size of the ledger (a rule's every key
        was 240 MB at a million events). A REARMED key is not done: ``automations retry``
        asked for it to be tried again.
        """
        wanted = list(dict.fromkeys(keys))
        done: set[str] = set()
        with self._db.guard("looking up done event keys"):
            for start in range(0, len(wanted), KEY_BATCH):
                batch = wanted[start : start + KEY_BATCH]
                marks = ", ".join("?" for _ in batch)
                rows = self._db.rows(
                    f"SELECT event_key FROM events WHERE event_key IN ({marks}) AND state != ?",
                    [*batch, EventState.REARMED.value],
                )
                done.update(row["event_key"] for row in rows)
        return done

    def applied_since(self, rule: str, since: datetime) -> int:
        """How many of ``rule``'s edits landed (applied, or found applied by reconcile) at or
        after ``since``: what ``max_actions_per_day`` counts. A range on an index."""
        with self._db.guard(f"counting the recent edits of rule {rule!r}"):
            row = self._db.one(
                "SELECT count(*) AS n FROM events WHERE rule = ? AND finished_at >= ? "
                "AND state IN (?, ?)",
                [rule, to_text(since), EventState.APPLIED.value, EventState.RECONCILED.value],
            )
        return 0 if row is None else int(row["n"])


def _details(text: str | None) -> dict[str, Any] | None:
    """The ``details`` column: a JSON object, or None (unknown, or not an object)."""
    if text is None:
        return None
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"details is JSON {type(value).__name__}, not an object")
    return value


def _filters(
    rule: str | None,
    incident: str | None,
    since: datetime | None,
    states: Iterable[EventState] | None,
) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (with a leading space, or empty) and its parameters."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if rule is not None:
        where.append("rule = :rule")
        params["rule"] = rule
    if incident is not None:
        # lower() on both engines (ASCII references): SQLite's NOCASE is not PostgreSQL's.
        where.append("(incident_id = :incident OR lower(incident_reference) = lower(:incident))")
        params["incident"] = incident
    if since is not None:
        where.append("claimed_at >= :since")
        params["since"] = to_text(since)
    if states is not None:
        names = {f"state{i}": EventState(s).value for i, s in enumerate(states)}
        where.append(f"state IN ({', '.join(':' + name for name in names) or 'NULL'})")
        params.update(names)
    return (" WHERE " + " AND ".join(where) if where else ""), params
