"""``digest status``: each digest's schedule and outbox, from the config and the ledger alone.

No API, no SMTP: an operator asks "when does it go next, did the last one go,
what is stuck" while the API or the mail server is the thing that is down.
Periods later than now (queued while the host clock was ahead) are flagged:
they count as nothing (see ``Digests.due``) and this is where they show.
Entries are counted per state over the whole outbox (``--limit`` only cuts the
list): *queued* is pending plus sending, what has yet to reach the server.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from automations.config import Config
from automations.digest.config import DigestOptions, no_such_digest
from automations.digest.schedule import Schedule, in_future, period_instant
from automations.history import iso
from automations.ledger import Ledger, OutboxItem, OutboxState

QUEUED = (OutboxState.PENDING, OutboxState.SENDING)


@dataclass(frozen=True)
class Entry:
    """One outbox item as ``digest status`` shows it (no message bytes)."""

    item: OutboxItem
    in_future: bool

    def json(self) -> dict[str, Any]:
        item = self.item
        sending = item.state == OutboxState.SENDING
        return {
            "period": item.period,
            "state": item.state.value,
            "attempts": item.attempts,
            "last_error": item.last_error,
            "in_future": self.in_future,
            "created_at": iso(item.created_at),
            "next_attempt_at": iso(item.next_attempt_at)
            if item.state == OutboxState.PENDING
            else None,
            "sent_at": iso(item.sent_at),
            "expires_at": iso(item.expires_at),
            "owner": item.owner if sending else None,
            "lease_until": iso(item.lease_until) if sending else None,
        }

    def line(self) -> str:
        item = self.item
        attempts = f"{item.attempts} attempt{'' if item.attempts == 1 else 's'}"
        parts = [f"{item.period}  {item.state.value:<7}  {attempts}"]
        if item.state == OutboxState.PENDING:
            parts.append(f"next try {iso(item.next_attempt_at)}")
        elif item.state == OutboxState.SENDING:
            parts.append(f"by {item.owner} until {iso(item.lease_until)}")
        elif item.state == OutboxState.SENT:
            parts.append(f"sent {iso(item.sent_at)}")
        if item.last_error:
            parts.append(f"error: {' '.join(item.last_error.split())}")
        if self.in_future:
            parts.append(
                "IN THE FUTURE: queued while the host clock was ahead; it covers no real period"
            )
        return "  ".join(parts)


@dataclass(frozen=True)
class DigestStatus:
    """One digest: its schedule, when it goes next, and its newest outbox entries."""

    options: DigestOptions
    now: datetime
    next_send: datetime | None  # None when disabled (or a cron silent for decades)
    last_sent: str | None  # the latest period sent, leaving out those in the future
    entries: list[Entry]  # the newest, oldest first
    total: int  # entries in the outbox, shown or not
    counts: Counter[OutboxState]  # entries per state, shown or not

    def counts_json(self) -> dict[str, int]:
        """Every state, zeros included, and ``queued`` (pending + sending)."""
        counted = {"queued": sum(self.counts[state] for state in QUEUED)}
        counted.update((state.value, self.counts[state]) for state in OutboxState)
        return counted

    def counts_text(self) -> str:
        """``3 queued (2 pending, 1 sending), 1 sent, 1 failed``: the states that occur."""
        queued = [f"{self.counts[s]} {s.value}" for s in QUEUED if self.counts[s]]
        waiting = sum(self.counts[s] for s in QUEUED)
        parts = [f"{waiting} queued ({', '.join(queued)})"] if waiting else []
        final = [s for s in OutboxState if s not in QUEUED]
        parts += [f"{self.counts[s]} {s.value}" for s in final if self.counts[s]]
        return ", ".join(parts)

    def json(self) -> dict[str, Any]:
        opts = self.options
        return {
            "name": opts.name,
            "enabled": opts.enabled,
            "cron": opts.cron,
            "timezone": opts.timezone,
            "now": iso(self.now),
            "next_send": None
            if self.next_send is None
            else {"local": _local(self.next_send, opts), "utc": iso(self.next_send)},
            "last_sent_period": self.last_sent,
            "team_ids": list(opts.where.team_ids),
            "outbox_total": self.total,
            "outbox_counts": self.counts_json(),
            "outbox": [entry.json() for entry in self.entries],
        }

    def lines(self) -> list[str]:
        opts = self.options
        state = "enabled" if opts.enabled else "disabled"
        lines = [f"{opts.name}: {state}; cron {opts.cron!r} in {opts.timezone}"]
        if self.next_send is not None:
            lines.append(
                f"  next send: {_local(self.next_send, opts)} ({opts.timezone}), "
                f"{iso(self.next_send)} (UTC)"
            )
        else:
            lines.append(f"  next send: none ({'no occurrence' if opts.enabled else state})")
        lines.append(f"  last sent: {self.last_sent or 'never'}")
        if (teams := opts.where.local_filter().describe()) is not None:
            lines.append(f"  where: {teams}")
        counted = f": {self.counts_text()}" if self.total else ""
        shown = f"; the newest {len(self.entries)} shown" if len(self.entries) < self.total else ""
        entries = f"{self.total} entr{'y' if self.total == 1 else 'ies'}"
        lines.append(f"  outbox: {entries}{counted}{shown}")
        lines.extend(f"    {entry.line()}" for entry in self.entries)
        return lines


def digest_statuses(
    config: Config, ledger: Ledger | None, now: datetime, name: str | None, limit: int
) -> list[DigestStatus]:
    """Every digest (or only ``name``) at ``now``; ``ledger`` None: nothing has run yet."""
    chosen = [opts for opts in config.digests if name is None or opts.name == name]
    if name is not None and not chosen:
        raise no_such_digest(config.path, name, [opts.name for opts in config.digests])
    return [_status(opts, ledger, now, limit) for opts in chosen]


def _status(opts: DigestOptions, ledger: Ledger | None, now: datetime, limit: int) -> DigestStatus:
    periods = ledger.outbox.periods(opts.name) if ledger is not None else []
    sent = [
        period
        for period, state in periods
        if state == OutboxState.SENT and not _future(period, now)
    ]
    entries = []
    for period, _state in periods[-limit:]:
        item = ledger.outbox.find(opts.name, period) if ledger is not None else None
        if item is not None:  # None: removed between the two reads
            entries.append(Entry(item, _future(period, now)))
    schedule = Schedule(opts.cron, opts.zone)
    return DigestStatus(
        options=opts,
        now=now,
        next_send=schedule.next_after(now) if opts.enabled else None,
        last_sent=sent[-1] if sent else None,
        entries=entries,
        total=len(periods),
        counts=Counter(state for _period, state in periods),
    )


def _future(period: str, now: datetime) -> bool:
    moment = period_instant(period)
    return moment is not None and in_future(moment, now)


def _local(moment: datetime, opts: DigestOptions) -> str:
    return moment.astimezone(opts.zone).isoformat()
