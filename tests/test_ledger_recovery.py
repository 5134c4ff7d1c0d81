"""The ledger's part in recovery: re-arming failed events, baselines, which rules ran, names,
and when a digest was first scheduled; on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from automations.errors import LedgerError
from automations.ledger import EventState, Ledger
from tests.ledger_backends import LedgerTarget, older_ledger

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
M = timedelta(minutes=1)
BODY = {"incident": {"severity_id": "01SEV-MAJOR"}, "notify_incident_channel": True}


def claim(ledger: Ledger, key: str, *, rule: str = "escalate", now: datetime = T0) -> bool:
    incident = key.split("/")[1]
    return ledger.events.claim(
        rule=rule,
        incident_id=incident,
        incident_reference=f"INC-{incident}",
        incident_name=f"Incident {incident}",
        event_key=key,
        reason="live for 2h5m >= 2h",
        request_body=BODY,
        now=now,
    )


def failed(ledger: Ledger, key: str, *, rule: str = "escalate", now: datetime = T0) -> None:
    assert claim(ledger, key, rule=rule, now=now)
    ledger.events.mark_failed(key, error="HTTP 422", now=now)


def test_claim_keeps_the_incident_name(ledger: Ledger) -> None:
    """The name given at claim time is stored and read back."""
    claim(ledger, "escalate/1/step-0")
    event = ledger.events.get("escalate/1/step-0")
    assert event is not None
    assert event.incident_name == "Incident 1"


def test_rearmed_keys_are_not_done_and_the_next_claim_takes_them_over(ledger: Ledger) -> None:
    """A re-armed FAILED key is not done; claiming it again keeps the row and the key."""
    failed(ledger, "escalate/1/step-0")
    (before,) = ledger.events.history()

    (rearmed,) = ledger.events.rearm_failed(now=T0 + M)
    keys_while_armed = ledger.events.done_keys(["escalate/1/step-0"])
    assert claim(ledger, "escalate/1/step-0", now=T0 + 2 * M)
    assert not claim(ledger, "escalate/1/step-0", now=T0 + 3 * M)  # planned again: taken
    ledger.events.mark_applied("escalate/1/step-0", request_id="req-2", now=T0 + 2 * M)
    (after,) = ledger.events.history()

    assert (rearmed.state, rearmed.rearmed, rearmed.rearmed_at) == (EventState.REARMED, 1, T0 + M)
    assert rearmed.error == "HTTP 422"  # kept until the next attempt
    assert keys_while_armed == set()
    assert (after.id, after.event_key) == (before.id, before.event_key)
    assert (after.state, after.attempts, after.rearmed) == (EventState.APPLIED, 2, 1)
    assert (after.error, after.request_id, after.claimed_at) == (None, "req-2", T0 + 2 * M)
    assert ledger.events.rearm_failed() == []  # nothing failed any more


def test_only_failed_events_are_rearmed(ledger: Ledger) -> None:
    """Applied, skipped and planned events are never re-armed: done means done."""
    claim(ledger, "escalate/1/step-0")
    ledger.events.mark_applied("escalate/1/step-0", request_id=None)
    claim(ledger, "escalate/2/step-0")
    ledger.events.mark_skipped("escalate/2/step-0", reason="baseline")
    claim(ledger, "escalate/3/step-0")

    assert ledger.events.rearm_failed() == []
    assert {e.state for e in ledger.events.history()} == {
        EventState.APPLIED,
        EventState.SKIPPED,
        EventState.PLANNED,
    }


def test_a_release_after_a_rearm_keeps_the_count(ledger: Ledger) -> None:
    """A re-armed key the re-check released still counts its re-arm on the next claim."""
    failed(ledger, "escalate/1/step-0")
    ledger.events.rearm_failed()
    claim(ledger, "escalate/1/step-0")
    ledger.events.release("escalate/1/step-0")
    claim(ledger, "escalate/1/step-0")
    event = ledger.events.get("escalate/1/step-0")
    assert event is not None
    assert (event.state, event.attempts, event.rearmed) == (EventState.PLANNED, 3, 1)


def test_a_rearmed_event_cannot_be_marked(ledger: Ledger) -> None:
    """Only a PLANNED event records an outcome; a re-armed one must be claimed first."""
    failed(ledger, "escalate/1/step-0")
    ledger.events.rearm_failed()
    with pytest.raises(LedgerError, match="already rearmed"):
        ledger.events.mark_applied("escalate/1/step-0", request_id=None)


def baseline(ledger: Ledger, incident: str) -> bool:
    return ledger.events.record_baseline(
        rule="escalate",
        incident_id=incident,
        incident_reference=f"INC-{incident}",
        incident_name="Old",
        event_key=f"escalate/{incident}/step-0",
        reason="baseline: due when adopted",
        request_body=BODY,
        now=T0,
    )


def test_baseline_takes_the_key_as_skipped_once(ledger: Ledger) -> None:
    """record_baseline claims and skips in one step; a taken key is left alone."""
    claim(ledger, "escalate/2/step-0")
    assert baseline(ledger, "1")
    assert not baseline(ledger, "1")
    assert not baseline(ledger, "2")
    states = {e.event_key: (e.state, e.reason) for e in ledger.events.history()}
    assert states["escalate/1/step-0"] == (EventState.SKIPPED, "baseline: due when adopted")
    assert states["escalate/2/step-0"][0] is EventState.PLANNED


def test_rules_that_ran_have_an_event_or_an_ok_cycle(ledger: Ledger) -> None:
    """A rule ran if it has an event, or was in a cycle that finished OK (not failed/running)."""

    def finish(run_id: int, error: str | None = None) -> None:
        ledger.runs.finish(
            run_id,
            incidents_seen=0,
            actions_planned=0,
            actions_applied=0,
            actions_failed=0,
            actions_skipped=0,
            api_requests=0,
            error=error,
            now=T0,
        )

    ok = ledger.runs.start("every 1m", rules=["quiet", "quiet"], now=T0)
    finish(ok)
    broken = ledger.runs.start("every 1m", rules=["broken"], now=T0)
    finish(broken, "API down")
    ledger.runs.start("every 5m", rules=["running"], now=T0)
    claim(ledger, "acted/1/step-0", rule="acted")

    assert ledger.runs.rules_that_ran() == {"quiet", "acted"}
    assert ledger.events.rules() == {"acted"}


def test_digest_first_scheduled_is_recorded_once(ledger: Ledger) -> None:
    """The first ask records now; later asks return it unchanged."""
    assert ledger.outbox.first_scheduled("daily", now=T0) == T0
    assert ledger.outbox.first_scheduled("daily", now=T0 + M) == T0
    assert ledger.outbox.first_scheduled("weekly", now=T0 + M) == T0 + M


def test_an_older_ledger_keeps_its_rows_and_dates_digests_from_the_outbox(
    ledger_target: LedgerTarget,
) -> None:
    """Upgrading: old events read with no name and no re-arm; a digest already in the outbox
    counts as scheduled since its first item, so its next missed run is still caught up."""
    with older_ledger(ledger_target, "0007_events_incident_name") as execute:
        execute(
            "INSERT INTO events (rule, incident_id, incident_reference, event_key, state, reason,"
            " claimed_at) VALUES ('r', 'i', 'INC-1', 'r/i/0', 'failed', 'old', ?)",
            [T0.isoformat(timespec="microseconds")],
        )
        execute(
            "INSERT INTO outbox (digest, period, state, subject, recipients, message, message_id,"
            " next_attempt_at, created_at, expires_at) VALUES ('daily',"
            " '2026-11-20T08:00:00+00:00', 'sent', 's', '[]', ?, '<m>', ?, ?, ?)",
            [b"\x00", *[T0.isoformat(timespec="microseconds")] * 3],
        )

    with Ledger(ledger_target) as ledger:
        (old,) = ledger.events.history()
        first = ledger.outbox.first_scheduled("daily", now=T0 + 5 * M)
        (rearmed,) = ledger.events.rearm_failed()

    assert (old.incident_name, old.rearmed, old.rearmed_at) == (None, 0, None)
    assert first == T0
    assert rearmed.rearmed == 1
