"""What ``history`` and ``retry`` share: the ledger's options checked, events as text and JSON.

Times are printed as ISO 8601 UTC to the second (``2026-11-24T12:00:00Z``) in
both forms, so a person and a script read the same value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from automations.clock import ledger_clock, rfc3339
from automations.config import Config
from automations.durations import parse_duration
from automations.errors import ConfigError
from automations.ledger import Event, EventState, Ledger, Notification, NotificationState
from automations.store import ledger_exists, open_ledger
from automations.text import one_line

STATES = tuple(state.value for state in EventState)
NOTIFICATION_STATES = tuple(state.value for state in NotificationState)


def iso(moment: datetime | None) -> str | None:
    """``2026-11-24T12:00:00Z``: UTC, to the second."""
    if moment is None:
        return None
    return rfc3339(moment)


def existing_ledger(config: Config) -> Ledger:
    """The config's ledger, which must exist: reading commands never create one."""
    if not ledger_exists(config):
        raise ConfigError(f"{config.store.path}: no ledger yet (nothing has run with this config)")
    return open_ledger(config)


def parse_since(since: str | None) -> timedelta | None:
    """The ``--since`` option: a duration like 24h or 7d."""
    try:
        return None if since is None else parse_duration(since)
    except ValueError as exc:
        raise ConfigError(f"--since: {exc}") from None


def cutoff(ledger: Ledger, age: timedelta | None) -> datetime | None:
    """``age`` before the daemon's "now" (API time), not the host's: ledger times are API times."""
    return None if age is None else ledger_clock(ledger.meta)() - age


def parse_states(values: Sequence[str]) -> list[EventState] | None:
    """The ``--state`` options (repeatable); None means every state."""
    for value in values:
        if value not in STATES:
            raise ConfigError(f"--state: {value!r} is not a state; allowed: {', '.join(STATES)}")
    return [EventState(value) for value in values] or None


def parse_notification_states(values: Sequence[str]) -> list[NotificationState] | None:
    """``--state`` with ``--notifications``: the states of a delivery; None means every one."""
    for value in values:
        if value not in NOTIFICATION_STATES:
            raise ConfigError(
                f"--state: {value!r} is not a notification state; allowed: "
                f"{', '.join(NOTIFICATION_STATES)}"
            )
    return [NotificationState(value) for value in values] or None


def check_rule(config: Config, ledger: Ledger, rule: str | None) -> None:
    """``--rule`` must name a rule of the config, or one the ledger has events for."""
    if rule is None:
        return
    configured = [options.name for options in config.rules]
    recorded = ledger.events.rules()
    if rule in configured or rule in recorded:
        return
    former = sorted(recorded - set(configured))
    known = ", ".join(configured) or "(none configured)"
    also = f"; in the ledger only: {', '.join(former)}" if former else ""
    raise ConfigError(f"{config.path}: --rule: no rule named {rule!r}; rules: {known}{also}")


def event_json(event: Event) -> dict[str, Any]:
    """One event for ``--json``: every column, times as ISO 8601 UTC."""
    return {
        "id": event.id,
        "rule": event.rule,
        "incident_id": event.incident_id,
        "incident_reference": event.incident_reference,
        "incident_name": event.incident_name,
        "event_key": event.event_key,
        "state": event.state.value,
        "reason": event.reason,
        "request_body": event.request_body,
        "request_id": event.request_id,
        "error": event.error,
        "dry_run": event.dry_run,
        "claimed_at": iso(event.claimed_at),
        "finished_at": iso(event.finished_at),
        "attempts": event.attempts,
        "rearmed": event.rearmed,
        "rearmed_at": iso(event.rearmed_at),
        "kind": event.kind,
        "details": None if event.details is None else dict(event.details),
        "incident_private": event.incident_private,
        "incident_mode": event.incident_mode,
    }


def event_lines(event: Event) -> list[str]:
    """One line per event, then indented details (error, retries) when there are any."""
    when = iso(event.claimed_at)
    name = f" {one_line(event.incident_name)!r}" if event.incident_name else ""
    head = f"{when} {event.state.value:<10} {event.incident_reference}{name}"
    lines = [f"{head}  [{event.rule}] {event.reason}"]
    indent = " " * (len(f"{when} ") + 11)
    if event.error:
        lines.append(f"{indent}error: {event.error}")
    if event.rearmed:
        times = "once" if event.rearmed == 1 else f"{event.rearmed} times"
        lines.append(
            f"{indent}re-armed {times} by `automations retry`, last at {iso(event.rearmed_at)}; "
            f"attempt {event.attempts}"
        )
    return lines


def quarantine_lines(ledger: Ledger) -> list[str]:
    """Rows of runs and outbox that could not be read (events show in the list itself)."""
    return [q.line() for q in ledger.quarantine.rows() if q.source != "events"]


def notifications_by_event(
    ledger: Ledger, events: Iterable[Event]
) -> dict[str, list[Notification]]:
    """Each event's deliveries (one per channel), in the order they were queued."""
    found: dict[str, list[Notification]] = {}
    for item in ledger.notifications.history(event_keys=[event.event_key for event in events]):
        found.setdefault(item.event_key, []).append(item)
    return {key: sorted(items, key=lambda item: item.id) for key, items in found.items()}


def notification_json(item: Notification) -> dict[str, Any]:
    """One delivery for ``--json``: the row without its lease, times as ISO 8601 UTC."""
    notice = item.notice
    return {
        "id": item.id,
        "event_key": item.event_key,
        "channel": item.channel,
        "type": notice.type if notice is not None else None,
        "state": item.state.value,
        "attempts": item.attempts,
        "created_at": iso(item.created_at),
        "next_attempt_at": iso(item.next_attempt_at),
        "sent_at": iso(item.sent_at),
        "last_error": item.last_error,
    }


def _facts(item: Notification) -> str:
    """``2 attempts, sent 2026-11-24T12:00:05Z`` (or when the next try is)."""
    facts = f"{item.attempts} attempt{'s' if item.attempts != 1 else ''}"
    if item.sent_at is not None:
        facts += f", sent {iso(item.sent_at)}"
    elif item.state is NotificationState.QUEUED and item.attempts:
        facts += f", next try {iso(item.next_attempt_at)}"
    return facts


def _error(item: Notification) -> str | None:
    if item.last_error and item.state is not NotificationState.SENT:
        return one_line(item.last_error)
    return None


def delivery_lines(event: Event, deliveries: Sequence[Notification]) -> list[str]:
    """The lines under an event: ``notify ops-hook: sent, 1 attempt, sent ...`` per channel."""
    indent = " " * (len(f"{iso(event.claimed_at)} ") + 11)
    lines = []
    for item in deliveries:
        error = _error(item)
        tail = f"; last error: {error}" if error else ""
        lines.append(f"{indent}notify {item.channel}: {item.state.value}, {_facts(item)}{tail}")
    return lines


def notification_lines(item: Notification) -> list[str]:
    """``history --notifications``: when it was queued, state, channel, event, then the rest."""
    when = iso(item.created_at)
    head = f"{when} {item.state.value:<11} {item.channel}  {item.event_key}  ({_facts(item)})"
    error = _error(item)
    indent = " " * (len(f"{when} ") + 12)
    return [head, f"{indent}last error: {error}"] if error else [head]
