"""The ledger's webhook_deliveries table (real SQLite): one row per webhook-id, due order,
retries, and forgetting only finished rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from automations.ledger import Ledger, WebhookDeliveryState

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # any moment: the store takes times as given
UPDATED = "public_incident.incident_updated_v2"


def record(ledger: Ledger, webhook_id: str, at: datetime, incident: str | None = "01INC") -> bool:
    return ledger.webhooks.record(
        webhook_id=webhook_id, event_type=UPDATED, incident_id=incident, follow_up_id=None, now=at
    )


def test_a_webhook_id_is_recorded_once_and_queued_in_arrival_order(tmp_path: Path) -> None:
    """The second insert of an id is refused (False); due rows come oldest first, a postponed
    one only once its time has come, a never-tried one whatever the clock says."""
    with Ledger(tmp_path / "ledger.db") as ledger:
        assert record(ledger, "msg_1", T0)
        assert not record(ledger, "msg_1", T0 + timedelta(seconds=5))
        assert record(ledger, "msg_2", T0 + timedelta(seconds=1))
        assert [d.webhook_id for d in ledger.webhooks.due(now=T0, limit=10)] == [
            "msg_1",
            "msg_2",
        ]
        first = ledger.webhooks.get("msg_1")
        assert first is not None
        ledger.webhooks.retry(
            [first.id], next_attempt_at=T0 + timedelta(minutes=1), error="APIUnavailable: 503"
        )
        due_now = ledger.webhooks.due(now=T0 + timedelta(seconds=30), limit=10)
        due_later = ledger.webhooks.due(now=T0 + timedelta(minutes=1), limit=10)
        assert ledger.webhooks.backlog() == 2
    assert [d.webhook_id for d in due_now] == ["msg_2"]
    assert [d.webhook_id for d in due_later] == ["msg_1", "msg_2"]
    assert due_later[0].attempts == 1
    assert due_later[0].last_error == "APIUnavailable: 503"


def test_finished_rows_are_forgotten_after_a_while_queued_ones_never(tmp_path: Path) -> None:
    """forget_webhook_deliveries deletes processed and failed rows received before the cut,
    and keeps every queued row however old (it has not been processed yet)."""
    with Ledger(tmp_path / "ledger.db") as ledger:
        for name in ("old_done", "old_failed", "old_queued", "new_done"):
            at = T0 if name.startswith("old") else T0 + timedelta(days=8)
            record(ledger, name, at)
        ids = {d.webhook_id: d.id for d in ledger.webhooks.history()}
        ledger.webhooks.finish(
            [ids["old_done"], ids["new_done"]], state=WebhookDeliveryState.PROCESSED, now=T0
        )
        ledger.webhooks.finish(
            [ids["old_failed"]], state=WebhookDeliveryState.FAILED, now=T0, error="gave up"
        )
        forgotten = ledger.webhooks.forget(before=T0 + timedelta(days=7))
        left = [d.webhook_id for d in ledger.webhooks.history()]
    assert forgotten == 2
    assert left == ["old_queued", "new_done"]


def test_a_follow_ups_incident_once_learned_is_kept(tmp_path: Path) -> None:
    """A private follow-up event's row gets its incident from the worker, for any retry."""
    with Ledger(tmp_path / "ledger.db") as ledger:
        ledger.webhooks.record(
            webhook_id="msg_fu",
            event_type="private_incident.follow_up_updated_v2",
            incident_id=None,
            follow_up_id="01FOLLOW",
            now=T0,
        )
        (row,) = ledger.webhooks.history()
        ledger.webhooks.resolve_incident([row.id], "01INC")
        resolved = ledger.webhooks.get("msg_fu")
    assert row.incident_id is None
    assert resolved is not None
    assert resolved.incident_id == "01INC"
    assert resolved.follow_up_id == "01FOLLOW"
