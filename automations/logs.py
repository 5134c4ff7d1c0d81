"""Logging set-up: readable lines by default, JSON lines with ``--log-format json``.

Action lines carry structured fields (``action_fields``, ``event_fields``): in
JSON they are top-level keys, so ``jq 'select(.outcome == "failed")'`` works;
the text format shows only the message, which says the same in words.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from automations.ledger import Event, Notification
    from automations.rules.base import PlannedAction


def action_fields(
    action: PlannedAction, outcome: str, *, reason: str | None = None, error: str | None = None
) -> dict[str, Any]:
    """``extra=`` for the log line of what happened to one planned action.

    ``reason`` is what the ledger records as the reason: the plan's, unless the
    action was skipped (then why). The rule's own details (``step``, ``field``)
    come along; the keys every line has win over them.
    """
    details = dict(action.details)
    fields = {
        "outcome": outcome,
        "rule": action.rule,
        "incident_id": action.incident_id,
        "incident_reference": action.incident_reference,
        "incident_name": action.incident_name,
        "event_key": action.event_key,
        "kind": action.kind,
        "from": details.get("from"),
        "to": details.get("to"),
        "reason": action.reason if reason is None else reason,
        "error": error,
    }
    return {"fields": {**fields, **{k: v for k, v in details.items() if k not in fields}}}


def event_fields(event: Event, outcome: str, *, reason: str) -> dict[str, Any]:
    """``extra=`` for an event settled at start-up (``reconcile``): the ledger's row has no
    plan, so ``kind``, ``from`` and ``to`` are unknown (null)."""
    return {
        "fields": {
            "outcome": outcome,
            "rule": event.rule,
            "incident_id": event.incident_id,
            "incident_reference": event.incident_reference,
            "incident_name": None,
            "event_key": event.event_key,
            "kind": None,
            "from": None,
            "to": None,
            "reason": reason,
            "error": None,
        }
    }


def notification_fields(
    item: Notification, outcome: str, error: str | None = None
) -> dict[str, Any]:
    """``extra=`` for what happened to one queued notification (automations/notify/outbox.py)."""
    return {
        "fields": {
            "outcome": outcome,
            "event_key": item.event_key,
            "channel": item.channel,
            "attempts": item.attempts,
            "error": error,
        }
    }


class JSONFormatter(logging.Formatter):
    """One JSON object per line; the cycle summary and action fields are structured."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        cycle = getattr(record, "cycle", None)
        if cycle is not None:
            data["cycle"] = cycle
        for key, value in getattr(record, "fields", {}).items():
            data.setdefault(key, value)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet_libraries()


def quiet_libraries() -> None:
    """Libraries' chatter below WARNING stays out, whatever --log-level says."""
    # httpx logs every request (its whole URL: a webhook's token too) at INFO; the cycle
    # line is the one to read.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # apprise and urllib3 (under it) print whole URLs, tokens included, below WARNING.
    logging.getLogger("apprise").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
