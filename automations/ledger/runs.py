"""Runs: one row per scheduled cycle, for `automations history` and health checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from automations.errors import LedgerError
from automations.ledger.base import Database, Table, current, from_text, maybe_time, to_text
from automations.ledger.owners import may_settle
from automations.ledger.quarantine import Quarantine


class RunStatus(StrEnum):
    """A run is RUNNING until finished; one a crash left RUNNING is FAILED at the next start."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class Run:
    """One row of ``runs``."""

    id: int
    schedule: str
    started_at: datetime
    finished_at: datetime | None
    incidents_seen: int
    actions_planned: int
    actions_applied: int
    actions_failed: int
    actions_skipped: int
    api_requests: int
    error: str | None
    status: RunStatus
    owner: str | None = None  # host:pid:token of the process that ran it (owners.py)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Run:
        """Decode the time and status columns."""
        return cls(
            id=row["id"],
            schedule=row["schedule"],
            started_at=from_text(row["started_at"]),
            finished_at=maybe_time(row["finished_at"]),
            incidents_seen=row["incidents_seen"],
            actions_planned=row["actions_planned"],
            actions_applied=row["actions_applied"],
            actions_failed=row["actions_failed"],
            actions_skipped=row["actions_skipped"],
            api_requests=row["api_requests"],
            error=row["error"],
            status=RunStatus(row["status"]),
            owner=row.get("owner"),
        )


class RunStore(Table):
    """The ``runs`` table."""

    def __init__(self, db: Database, quarantine: Quarantine) -> None:
        super().__init__(db)
        self._quarantine = quarantine

    def start(
        self, schedule: str, *, rules: Sequence[str] = (), now: datetime | None = None
    ) -> int:
        """Record that a cycle of ``schedule`` (evaluating ``rules``) began; returns its id."""
        with self._db.guard(f"starting a run of {schedule!r}"), self._db.transaction():
            row = self._db.one(
                "INSERT INTO runs (schedule, started_at, status, owner) VALUES (?, ?, ?, ?) "
                "RETURNING id",
                [schedule, to_text(current(now)), RunStatus.RUNNING.value, self._db.owner],
            )
            assert row is not None  # an INSERT ... RETURNING returns its row
            run_id = int(row["id"])
            for rule in dict.fromkeys(rules):
                self._db.execute(
                    "INSERT INTO run_rules (run_id, rule) VALUES (?, ?)", [run_id, rule]
                )
        return run_id

    def finish(
        self,
        run_id: int,
        *,
        incidents_seen: int,
        actions_planned: int,
        actions_applied: int,
        actions_failed: int,
        actions_skipped: int,
        api_requests: int,
        error: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Record the counts; an ``error`` makes the run FAILED, otherwise it is OK."""
        params = {
            "id": run_id,
            "finished_at": to_text(current(now)),
            "incidents_seen": incidents_seen,
            "actions_planned": actions_planned,
            "actions_applied": actions_applied,
            "actions_failed": actions_failed,
            "actions_skipped": actions_skipped,
            "api_requests": api_requests,
            "error": error,
            "status": (RunStatus.OK if error is None else RunStatus.FAILED).value,
        }
        with self._db.guard(f"finishing run {run_id}"):
            changed = self._db.execute(
                """
                UPDATE runs SET finished_at = :finished_at, incidents_seen = :incidents_seen,
                    actions_planned = :actions_planned, actions_applied = :actions_applied,
                    actions_failed = :actions_failed, actions_skipped = :actions_skipped,
                    api_requests = :api_requests, error = :error, status = :status
                WHERE id = :id AND status = 'running'
                """,
                params,
            )
            if changed != 1:
                raise LedgerError(
                    f"cannot finish run {run_id}: no running run with that id in ledger "
                    f"{self._db.name}"
                )

    def close_interrupted(self, *, now: datetime | None = None) -> int:
        """Mark RUNNING runs whose process is gone (a crash, a kill) as FAILED.

        A run of a process that may still be at work (alive on this host, or on
        another host and younger than the lease) is left alone: only its own
        process finishes it.
        """
        moment = current(now)
        with self._db.guard("closing interrupted runs"), self._db.transaction():
            rows = self._db.rows("SELECT id, owner, started_at FROM runs WHERE status = 'running'")
            ids = [row["id"] for row in rows if _may_close(row, moment)]
            for run_id in ids:
                self._db.execute(
                    "UPDATE runs SET finished_at = ?, status = ?, error = ? "
                    "WHERE id = ? AND status = 'running'",
                    [
                        to_text(moment),
                        RunStatus.FAILED.value,
                        "interrupted: the process stopped before the cycle finished",
                        run_id,
                    ],
                )
        return len(ids)

    def _decode_runs(self, rows: list[dict[str, Any]]) -> list[Run]:
        """Each row as a Run; one that does not decode is moved to ``quarantine`` (a run is
        history only: nothing stands in for it)."""
        return self._quarantine.decode(rows, Run.from_row, self._set_aside)

    def _set_aside(self, row: Mapping[str, Any], exc: BaseException) -> None:
        with self._db.guard(f"quarantining run {row.get('id')}"), self._db.transaction():
            self._quarantine.move("runs", row, exc)
            self._db.execute("DELETE FROM run_rules WHERE run_id = ?", [row["id"]])
            self._db.execute("DELETE FROM runs WHERE id = ?", [row["id"]])

    def history(self, *, schedule: str | None = None, limit: int = 50) -> list[Run]:
        """Recent runs, newest first, optionally of one schedule."""
        where = "" if schedule is None else "WHERE schedule = :schedule"
        with self._db.guard("listing runs"):
            rows = self._db.rows(
                f"SELECT * FROM runs {where} ORDER BY started_at DESC, id DESC LIMIT :limit",
                {"schedule": schedule, "limit": limit},
            )
        return self._decode_runs(rows)

    def last_successful(self, schedule: str | None = None) -> Run | None:
        """The newest OK run (of ``schedule``, or of any) that can be read."""
        where = "" if schedule is None else "AND schedule = :schedule"
        while True:
            with self._db.guard("reading the last successful run"):
                row = self._db.one(
                    f"SELECT * FROM runs WHERE status = 'ok' {where} "
                    "ORDER BY started_at DESC, id DESC LIMIT 1",
                    {"schedule": schedule},
                )
            if row is None:
                return None
            decoded = self._decode_runs([row])  # an unreadable one is moved out: ask again
            if decoded:
                return decoded[0]

    def rules_that_ran(self) -> set[str]:
        """Rules that ran: they have an event, or were in a cycle that finished OK.

        A rule missing from this set has never run on this ledger (``plan`` says so when
        it has a backlog). Cycles recorded before rule names were kept count for no rule.
        """
        with self._db.guard("listing the rules that ran"):
            rows = self._db.rows(
                """
                SELECT rule FROM events
                UNION
                SELECT run_rules.rule FROM run_rules JOIN runs ON runs.id = run_rules.run_id
                WHERE runs.status = 'ok'
                """
            )
        return {row["rule"] for row in rows}


def _may_close(row: Mapping[str, Any], now: datetime) -> bool:
    try:
        started = from_text(row["started_at"])
    except (ValueError, TypeError):
        started = now  # unreadable: judged by its owner alone
    return may_settle(row["owner"], started, now)
