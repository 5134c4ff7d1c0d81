"""Notices for the channel tests: a fixed time, a hostile incident name, configs on disk."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from automations.notify.notice import ACTION_APPLIED, IncidentSummary, Notice

HOSTILE = '<script>alert(1)</script> & "quotes"'
AT = datetime(2026, 11, 23, 9, 12, tzinfo=UTC)  # when the action happened (not "now")


def hostile_notice(
    key: str = "escalate-stuck-minor/01HOSTILE0000000000000000/1",
    *,
    incident_id: str = "01HOSTILE0000000000000000",
) -> Notice:
    """An applied escalation on an incident whose name tries HTML, JSON and header tricks."""
    return Notice(
        event_key=key,
        type=ACTION_APPLIED,
        rule="escalate-stuck-minor",
        action="escalate",
        reason=f"live for 2h; severity Minor -> Major ({HOSTILE})",
        occurred_at=AT,
        incident=IncidentSummary(
            id=incident_id,
            reference="INC-42",
            name=HOSTILE,
            permalink="https://app.incident.io/acme/incidents/42",
            severity="Major",
            status="Investigating",
            private=False,
        ),
    )


def write_toml(folder: Path, body: str, name: str = "automations.toml") -> Path:
    path = folder / name
    path.write_text(f'[store]\npath = "{folder / "ledger.db"}"\n\n{body}')
    return path
