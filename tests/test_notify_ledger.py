"""The ledger side of notifications: the spec on the claim, rows queued with the action in one
transaction, one row per (event, channel), private incidents, quarantine, retention; on both
backends."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from automations.errors import LedgerError
from automations.ledger import EventState, Ledger, NotificationState, Pruned
from automations.notify.notice import SUMMARY, Notice
from automations.notify.sender import INCIDENT_UPDATE_CHANNEL
from automations.notify.spec import NotifySpec, QueuedNotice, notices_for
from tests.ledger_backends import raw
from tests.notify_support import PRIVATE_OK, PUBLIC, RULE, T0, apply, notice

KEY = "escalate-minor/01INCIDENT0001/step-0"
POLICIES = {"ops-hook": PUBLIC, "leadership": PRIVATE_OK}


def postgres(ledger: Ledger) -> bool:
    return ledger.engine == "postgresql"


def refuse_inserts(ledger: Ledger, error: str) -> None:
    """A trigger that makes every INSERT into notifications fail with ``error``."""
    if not postgres(ledger):
        raw(
            ledger,
            "CREATE TRIGGER refuse BEFORE INSERT ON notifications "
            f"BEGIN SELECT RAISE(ABORT, '{error}'); END",
        )
        return
    raw(
        ledger,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql "
        f"AS $$ BEGIN RAISE EXCEPTION '{error}'; END $$",
    )
    raw(
        ledger,
        "CREATE TRIGGER refuse BEFORE INSERT ON notifications "
        "FOR EACH ROW EXECUTE FUNCTION refuse()",
    )


def claim(ledger: Ledger, key: str = KEY, notify: NotifySpec | None = None) -> None:
    assert ledger.events.claim(
        rule=RULE,
        incident_id="01INCIDENT0001",
        incident_reference="INC-1",
        event_key=key,
        reason="why",
        request_body=None,
        notify=notify,
        now=T0,
    )


def rearm(ledger: Ledger, key: str) -> None:
    """Make the key claimable again, as `automations retry` does for a failed one."""
    raw(ledger, "UPDATE events SET state = 'rearmed' WHERE event_key = ?", [key])


def test_the_claim_keeps_the_notify_spec(ledger: Ledger) -> None:
    """claim(notify=...) is read back as Event.notify; a claim without one reads as empty."""
    spec = NotifySpec(("ops-hook", "leadership"), "Escalated automatically: live for 2h")
    claim(ledger, KEY, spec)
    claim(ledger, "other/01INCIDENT0001/step-0")

    with_spec, without = ledger.events.get(KEY), ledger.events.get("other/01INCIDENT0001/step-0")

    assert with_spec is not None
    assert without is not None
    assert with_spec.notify == spec
    assert without.notify == NotifySpec()
    assert not without.notify
    assert NotifySpec.from_json(spec.to_json()) == spec


def test_repeated_notices_make_one_row_per_event_and_channel(ledger: Ledger) -> None:
    """The same (event, channel) twice in mark_applied's notices, or again when a re-armed key
    is applied again, is one row."""
    queued = notices_for(NotifySpec(("ops-hook",)), notice(KEY), POLICIES)
    claim(ledger, KEY, NotifySpec(("ops-hook",)))
    ledger.events.mark_applied(KEY, request_id="r", now=T0, notices=[*queued, *queued])
    rearm(ledger, KEY)  # the same key again, as after `automations retry`
    claim(ledger, KEY, NotifySpec(("ops-hook",)))
    ledger.events.mark_applied(KEY, request_id="r2", now=T0 + timedelta(hours=1), notices=queued)

    rows = ledger.notifications.history()

    assert [(n.event_key, n.channel, n.state) for n in rows] == [
        (KEY, "ops-hook", NotificationState.QUEUED)
    ]
    assert rows[0].created_at == T0  # the first insert stands


def test_the_event_update_and_the_inserts_are_one_transaction(ledger: Ledger) -> None:
    """An INSERT that fails (a trigger here) rolls back the event's UPDATE: still planned."""
    claim(ledger, KEY, NotifySpec(("ops-hook",)))
    queued = notices_for(NotifySpec(("ops-hook",)), notice(KEY), POLICIES)
    refuse_inserts(ledger, "disk full")

    with pytest.raises(LedgerError, match="disk full"):
        ledger.events.mark_applied(KEY, request_id="r", now=T0, notices=queued)
    event = ledger.events.get(KEY)

    assert event is not None
    assert event.state is EventState.PLANNED
    assert ledger.notifications.history() == []
    raw(ledger, "DROP TRIGGER refuse" + (" ON notifications" if postgres(ledger) else ""))
    ledger.events.mark_reconciled(KEY, reason="edit found applied", now=T0, notices=queued)
    assert [n.channel for n in ledger.notifications.history(event_keys=[KEY])] == ["ops-hook"]
    assert ledger.events.get(KEY).state is EventState.RECONCILED  # type: ignore[union-attr]


def test_the_existing_signatures_still_work(ledger: Ledger) -> None:
    """mark_applied without notices (every caller before notifications) queues nothing."""
    claim(ledger)
    ledger.events.mark_applied(KEY, request_id="r")

    assert ledger.events.get(KEY).state is EventState.APPLIED  # type: ignore[union-attr]
    assert ledger.notifications.history() == []


def test_a_notice_of_another_event_is_refused(ledger: Ledger) -> None:
    """Rows belong to the event they are recorded with: a notice for another key is a bug."""
    claim(ledger)
    wrong = [QueuedNotice("ops-hook", notice("some/other/key"))]

    with pytest.raises(ValueError, match="cannot be queued with event"):
        ledger.events.mark_applied(KEY, request_id="r", notices=wrong)
    assert ledger.events.get(KEY).state is EventState.PLANNED  # type: ignore[union-attr]


def test_a_private_incident_is_never_queued_for_a_channel_without_include_private(
    ledger: Ledger,
) -> None:
    """Private: no row for include_private = false, one for true and for its own timeline."""
    apply(
        ledger,
        KEY,
        ["ops-hook", "leadership"],
        POLICIES,
        private=True,
        announce="Escalated automatically: live for 2h 5m",
    )
    apply(ledger, "escalate-minor/01INCIDENT0002/step-0", ["ops-hook"], POLICIES, number=2)

    rows = {(n.event_key, n.channel) for n in ledger.notifications.history()}

    assert rows == {
        (KEY, "leadership"),
        (KEY, INCIDENT_UPDATE_CHANNEL),
        ("escalate-minor/01INCIDENT0002/step-0", "ops-hook"),
    }
    [update] = ledger.notifications.history(channel=INCIDENT_UPDATE_CHANNEL)
    assert update.notice is not None
    assert update.notice.details == {"message": "Escalated automatically: live for 2h 5m"}


def test_a_channel_gone_from_the_config_is_logged_and_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A spec naming a channel no longer configured queues the others and says which went."""
    spec = NotifySpec(("ops-hook", "removed", "ops-hook"))

    with caplog.at_level(logging.WARNING, logger="automations.notify"):
        queued = notices_for(spec, notice(KEY), POLICIES)

    assert [q.channel for q in queued] == ["ops-hook"]
    [record] = caplog.records
    assert record.getMessage() == (
        f"{KEY}: not announced to removed: no such channel in the config any more (it changed "
        "since the action was claimed)"
    )


def test_an_undecodable_row_is_quarantined_and_never_sent(ledger: Ledger) -> None:
    """Notice JSON cut short: copied to quarantine, marked quarantined, never due, key kept."""
    apply(ledger, KEY, ["ops-hook"], POLICIES)
    raw(ledger, "UPDATE notifications SET notice = '{\"event_key\": '")

    due = ledger.notifications.due(now=T0)
    [row] = ledger.notifications.history()

    assert due == []
    assert row.state is NotificationState.QUARANTINED
    assert row.last_error is not None
    assert row.last_error.startswith("quarantined, the ledger row could not be read")
    [copy] = ledger.quarantine.rows("notifications")
    assert copy.source_id == row.id
    rearm(ledger, KEY)
    apply(ledger, KEY, ["ops-hook"], POLICIES)  # the (event, channel) stays taken
    assert [n.state for n in ledger.notifications.history()] == [NotificationState.QUARANTINED]


def test_an_undecodable_notify_spec_quarantines_its_event(ledger: Ledger) -> None:
    """events.notify that is not a spec: the event is quarantined, its key stays taken."""
    claim(ledger, KEY, NotifySpec(("ops-hook",)))
    raw(ledger, "UPDATE events SET notify = '[1, 2]'")

    event = ledger.events.get(KEY)

    assert event is not None
    assert event.state is EventState.QUARANTINED
    assert ledger.events.done_keys([KEY]) == {KEY}


def test_history_lists_by_event_channel_and_state_newest_first(ledger: Ledger) -> None:
    """notifications(): filters combine; newest first; a limit keeps the newest."""
    for number in range(1, 4):
        apply(
            ledger,
            f"escalate-minor/01INCIDENT000{number}/step-0",
            ["ops-hook", "leadership"],
            POLICIES,
            number=number,
            now=T0 + timedelta(minutes=number),
        )
    second = "escalate-minor/01INCIDENT0002/step-0"

    newest = ledger.notifications.history(channel="ops-hook", limit=2)
    of_one = ledger.notifications.history(event_keys=[second])
    queued = ledger.notifications.history(states=[NotificationState.QUEUED])
    recent = ledger.notifications.history(since=T0 + timedelta(minutes=3))

    assert [n.event_key for n in newest] == [
        "escalate-minor/01INCIDENT0003/step-0",
        second,
    ]
    assert {n.channel for n in of_one} == {"ops-hook", "leadership"}
    assert len(queued) == 6
    assert ledger.notifications.history(states=[NotificationState.SENT]) == []
    assert {n.event_key for n in recent} == {"escalate-minor/01INCIDENT0003/step-0"}


def test_retention_forgets_the_notifications_of_forgotten_events(ledger: Ledger) -> None:
    """forget_incident takes the incident's finished notifications with its events; old
    finished rows without an event (a summary) go by age; an unsent one stays."""
    apply(ledger, KEY, ["ops-hook", "leadership"], POLICIES)
    apply(ledger, "escalate-minor/01INCIDENT0002/step-0", ["ops-hook"], POLICIES, number=2)
    apply(ledger, "escalate-minor/01INCIDENT0003/step-0", ["ops-hook"], POLICIES, number=3)
    raw(ledger, "UPDATE notifications SET state = 'held' WHERE id = 4")  # incident 3's
    [batch] = ledger.notifications.held()
    summary = Notice("summary/ops-hook/4", SUMMARY, "", "summary", "1 held back", T0)
    assert ledger.notifications.summarise(batch, summary, now=T0)
    # Sent: all but the leadership row of KEY, which is still queued.
    raw(
        ledger,
        "UPDATE notifications SET state = 'sent', sent_at = created_at WHERE id IN (1, 3, 5)",
    )
    later = T0 + timedelta(days=400)

    pruned = Pruned()
    forgotten = ledger.retention.forget_incident("01INCIDENT0001", later, pruned)
    ledger.retention.prune_history(later, pruned)
    left = {(n.event_key, n.channel, n.state) for n in ledger.notifications.history()}

    assert forgotten == 1
    assert pruned.notifications == 2  # KEY's ops-hook row, and the summary (no event)
    assert left == {
        (KEY, "leadership", NotificationState.QUEUED),  # not finished: it may still be sent
        ("escalate-minor/01INCIDENT0002/step-0", "ops-hook", NotificationState.SENT),
        ("escalate-minor/01INCIDENT0003/step-0", "ops-hook", NotificationState.SUMMARISED),
    }
