"""Made-up notices: the one `automations notify test` sends, and one of each type that the
templates are rendered with at start-up (so a typo fails then, not on the first real one).

The incident is invented and says so: a test must never carry a real incident, least of
all a private one, to a channel.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from automations.notify.notice import (
    ACTION_APPLIED,
    NOTICE,
    SUMMARY,
    TEST,
    IncidentSummary,
    Notice,
)

TEST_INCIDENT = IncidentSummary(
    id="01TESTNOTIFICATION000000000",
    reference="INC-TEST",
    name="Test notification from automations (not a real incident)",
    permalink=None,
    severity="Minor",
    status="Investigating",
    private=False,
)


def probe_notice(channel: str, now: datetime) -> Notice:
    """What `automations notify test CHANNEL` sends: its own key each time, so a receiver that
    de-duplicates on webhook-id still shows every test."""
    return Notice(
        event_key=f"notify-test/{channel}/{now:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}",
        type=TEST,
        rule="notify-test",
        action="test",
        reason=f"A test of channel {channel}: if you read this, it reaches you",
        occurred_at=now,
        incident=TEST_INCIDENT,
    )


def sample_notices(channel: str, now: datetime) -> list[Notice]:
    """One notice of every type, as the outbox sends them, for checking templates."""
    applied = Notice(
        event_key="sample/01TESTNOTIFICATION000000000/1",
        type=ACTION_APPLIED,
        rule="sample-rule",
        action="escalate",
        reason="live for 2h (step 1: after 2h); severity Minor -> Major",
        occurred_at=now,
        incident=TEST_INCIDENT,
    )
    noticed = Notice(
        event_key="sample-notice/01TESTNOTIFICATION000000000/1",
        type=NOTICE,
        rule="sample-notice",
        action="notice",
        reason="Critical and live for 1h",
        occurred_at=now,
        incident=TEST_INCIDENT,
    )
    held = Notice(  # as the outbox words it (notify/outbox.py, summary_notice)
        event_key=f"summary/{channel}/1",
        type=SUMMARY,
        rule="",
        action="summary",
        reason="12 notifications held back by max_per_hour = 30 since 2026-11-23T08:00:00Z",
        occurred_at=now,
        details={"held_back": 12, "since": "2026-11-23T08:00:00Z"},
    )
    return [applied, noticed, held, probe_notice(channel, now)]
