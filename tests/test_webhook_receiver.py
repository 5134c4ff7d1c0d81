"""incident.io webhooks end to end: signed deliveries over real HTTP to the daemon's listener,
recorded in the ledger, processed by its worker against the sandbox."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import httpx
import pytest

from automations.ledger import WebhookDeliveryState
from tests.digest_support import free_port
from tests.engine_harness import Harness
from tests.webhook_support import (
    CREATED,
    ESCALATE,
    PRIVATE_UPDATED,
    STATUS_UPDATED,
    UPDATED,
    WEBHOOKS,
    Sender,
    daemon_metrics,
    deliveries,
    event_body,
    incident_reads,
    metric,
    wait_until,
    webhook_daemon,
)

H = timedelta(hours=1)
FOLLOW_UP_UPDATED = "public_incident.follow_up_updated_v2"
PRIVATE_FOLLOW_UP_UPDATED = "private_incident.follow_up_updated_v2"


def test_an_escalation_due_at_an_update_is_applied_on_its_webhook(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A 3h-old Minor incident moved from Triage to live is escalated on the update's webhook,
    with no polling cycle: the delivery is answered 200, recorded, then processed."""
    caplog.set_level(logging.INFO)
    harness.write(WEBHOOKS + ESCALATE)
    incident = harness.add("Slow burn", age=3 * H, status="Triage")
    with webhook_daemon(harness, monkeypatch) as (daemon, sender):
        harness.sandbox.update_incident(incident["id"], status="Investigating")
        response = sender.updated(incident["id"])
        took = wait_until(lambda: harness.severity(incident["id"]) == "Major", "the escalation")
        (delivery,) = deliveries(daemon.runtime)
        wait_until(lambda: deliveries(daemon.runtime)[0].state != "queued", "processed")
        (delivery,) = deliveries(daemon.runtime)
    assert response.status_code == 200
    assert response.text == "queued\n"
    assert delivery.state is WebhookDeliveryState.PROCESSED
    assert delivery.incident_id == incident["id"]
    assert [p["body"]["incident"] for p in harness.posts()] == [
        {"severity_id": harness.sandbox.incident(incident["id"])["severity"]["id"]}
    ]
    assert harness.list_requests() == 0  # no poll: the webhook alone did it
    assert any("webhook: 1 delivery about 1 incident" in r.message for r in caplog.records)
    print(f"escalated {took:.2f}s after the delivery was answered")


def test_a_replayed_delivery_is_acknowledged_and_processed_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """incident.io's retries of one delivery (same webhook-id, new timestamp and signature)
    are answered 200 and recorded once; a replay after processing is not processed again."""
    harness.write(WEBHOOKS + ESCALATE)
    incident = harness.add("Due", age=3 * H, status="Investigating")
    other = harness.add("Another", age=1 * H, status="Investigating")
    with webhook_daemon(harness, monkeypatch, worker=False) as (daemon, sender):
        first = sender.updated(incident["id"], webhook_id="msg_retried")
        retries = [sender.updated(incident["id"], webhook_id="msg_retried") for _ in range(2)]
        assert daemon.webhooks is not None
        daemon.webhooks.start()
        wait_until(lambda: harness.severity(incident["id"]) == "Major", "the escalation")
        wait_until(lambda: daemon.runtime.ledger.webhooks.backlog() == 0, "processing")
        reads = incident_reads(harness, incident["id"])
        replay = sender.updated(incident["id"], webhook_id="msg_retried")
        sender.updated(other["id"])  # processed after anything queued before it
        wait_until(lambda: daemon.runtime.ledger.webhooks.backlog() == 0, "the other one")
        wait_until(lambda: incident_reads(harness, other["id"]) >= 2, "the other's re-read")
        recorded = deliveries(daemon.runtime)
        # Counted just after the row is finished: wait for the count itself.
        wait_until(lambda: metric(daemon_metrics(daemon), UPDATED, "processed") == 2, "the count")
        metrics = daemon_metrics(daemon)
    assert first.text == "queued\n"
    assert [r.status_code for r in [*retries, replay]] == [200, 200, 200]
    assert {r.text for r in [*retries, replay]} == {"duplicate: already received\n"}
    assert len(harness.posts()) == 1
    assert incident_reads(harness, incident["id"]) == reads + 1  # the replay's own body read
    assert recorded[0].webhook_id == "msg_retried"
    assert len(recorded) == 2
    assert metric(metrics, UPDATED, "accepted") == 2
    assert metric(metrics, UPDATED, "duplicate") == 3
    assert metric(metrics, UPDATED, "processed") == 2


def test_a_private_event_is_handled_by_re_reading_the_incident(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A private incident's event carries only its ID: the worker reads the incident from
    the API and escalates it like any other."""
    harness.write(WEBHOOKS + ESCALATE)
    incident = harness.add("Private one", age=3 * H, status="Investigating", visibility="private")
    with webhook_daemon(harness, monkeypatch) as (daemon, sender):
        response = sender.send(PRIVATE_UPDATED, {"id": incident["id"]})
        wait_until(lambda: harness.severity(incident["id"]) == "Major", "the escalation")
        wait_until(lambda: daemon.runtime.ledger.webhooks.backlog() == 0, "processing")
        (delivery,) = deliveries(daemon.runtime)
    assert response.status_code == 200
    assert delivery.event_type == PRIVATE_UPDATED
    assert delivery.incident_id == incident["id"]
    assert incident_reads(harness, incident["id"]) >= 1


def test_events_out_of_order_lead_to_the_right_single_action(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older "created" arriving after an "updated" changes nothing more: each event re-reads
    the incident, so a stale body neither repeats an escalation nor downgrades a raised one."""
    harness.write(WEBHOOKS + ESCALATE)
    moved = harness.add("Moved to live", age=3 * H, status="Triage")
    raised = harness.add("Raised by a human", age=3 * H, status="Investigating")
    with webhook_daemon(harness, monkeypatch) as (daemon, sender):
        created = {i["id"]: sender.api_incident(i["id"]) for i in (moved, raised)}
        harness.sandbox.update_incident(moved["id"], status="Investigating")
        harness.sandbox.update_incident(raised["id"], severity="Critical")
        for incident in (moved, raised):
            assert sender.updated(incident["id"]).status_code == 200
        for incident in (moved, raised):  # the older events, late: Triage / Minor and live
            assert sender.send(CREATED, created[incident["id"]]).status_code == 200
        wait_until(lambda: len(deliveries(daemon.runtime)) == 4, "all four recorded")
        wait_until(lambda: daemon.runtime.ledger.webhooks.backlog() == 0, "processing")
        states = {d.state for d in deliveries(daemon.runtime)}
    assert states == {WebhookDeliveryState.PROCESSED}
    assert [p["path"] for p in harness.posts()] == [f"/v2/incidents/{moved['id']}/actions/edit"]
    assert harness.severity(moved["id"]) == "Major"
    assert harness.severity(raised["id"]) == "Critical"  # never "escalated" down to Major


def test_only_rules_whose_where_matches_act_and_disabled_rules_never(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The incident is judged only by enabled rules whose query would return it: a test
    incident (outside the default modes), a Major one (outside severity = Minor) and a
    disabled rule stay untouched; the matching one is escalated."""
    disabled = """
[[rules]]
name = "any-live"
type = "escalate_severity"
enabled = false
every = "1h"
where = { status_category = ["live"] }
steps = [ { after = "2h", to = "Critical" } ]
"""
    harness.write(WEBHOOKS + ESCALATE + disabled)
    test_mode = harness.add("A drill", age=3 * H, status="Investigating", mode="test")
    major = harness.add("Already major", age=3 * H, status="Investigating", severity="Major")
    due = harness.add("Due", age=3 * H, status="Investigating")
    with webhook_daemon(harness, monkeypatch) as (daemon, sender):
        for incident in (test_mode, major, due):
            assert sender.updated(incident["id"]).status_code == 200
        wait_until(lambda: len(deliveries(daemon.runtime)) == 3, "all recorded")
        wait_until(lambda: daemon.runtime.ledger.webhooks.backlog() == 0, "processing")
    assert [p["path"] for p in harness.posts()] == [f"/v2/incidents/{due['id']}/actions/edit"]
    assert harness.severity(test_mode["id"]) == "Minor"
    assert harness.severity(major["id"]) == "Major"


CLOSE_DONE = """
[[rules]]
name = "close-done"
type = "sync_status"
every = "1h"
where = { status_category = ["learning"] }
require = { follow_ups = "completed" }
to_status = "Closed"
"""


def follow_ups_of(harness: Harness, incident_id: str) -> list[dict[str, Any]]:
    with harness.sandbox.api() as api:
        answer = api.get("/v3/follow_ups", params={"incident_id": incident_id}).json()
    items: list[dict[str, Any]] = answer["follow_ups"]
    return items


def test_follow_up_events_recheck_rules_that_need_follow_ups(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follow-up completed in the app closes its incident on the follow-up's event: the
    public event names the incident; the private one only the follow-up, whose incident the
    worker asks the API for. A rule that ignores follow-ups does not re-read for them."""
    harness.write(WEBHOOKS + CLOSE_DONE + ESCALATE)
    days = timedelta(days=20)
    public = harness.add("Public", age=days, status="Documenting", follow_ups=[{"title": "Fix"}])
    private = harness.add(
        "Private",
        age=days,
        status="Documenting",
        visibility="private",
        follow_ups=[{"title": "Fix"}],
    )
    live = harness.add("Live", age=1 * H, status="Investigating", follow_ups=[{"title": "Note"}])
    (public_item,) = follow_ups_of(harness, public["id"])
    (private_item,) = follow_ups_of(harness, private["id"])
    (live_item,) = follow_ups_of(harness, live["id"])
    with webhook_daemon(harness, monkeypatch) as (daemon, sender):
        for item in (public_item, private_item, live_item):
            harness.sandbox.update_follow_up(item["id"], status="completed")
        harness.sandbox.clear_requests()
        public_item = next(iter(follow_ups_of(harness, public["id"])))
        sender.send(FOLLOW_UP_UPDATED, public_item)
        sender.send(PRIVATE_FOLLOW_UP_UPDATED, {"id": private_item["id"]})
        wait_until(lambda: harness.status(public["id"]) == "Closed", "the public one closed")
        wait_until(lambda: harness.status(private["id"]) == "Closed", "the private one closed")
        wait_until(lambda: daemon.runtime.ledger.webhooks.backlog() == 0, "processing")
        recorded = {d.follow_up_id: d for d in deliveries(daemon.runtime)}
    assert recorded[private_item["id"]].incident_id == private["id"]  # learned from the API
    asked = [r["path"] for r in harness.sandbox.requests() if r["method"] == "GET"]
    assert f"/v3/follow_ups/{private_item['id']}" in asked
    assert f"/v2/incidents/{live['id']}" not in asked  # no event named it


def test_unknown_event_types_are_acknowledged_and_logged_once_per_type(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Schedule and action events get 200 and are ignored, with one log line per type."""
    caplog.set_level(logging.INFO)
    harness.write(WEBHOOKS + ESCALATE)
    with webhook_daemon(harness, monkeypatch) as (daemon, sender):
        harness.sandbox.clear_requests()  # the start-up's catalog
        shift = {"schedule": {"id": "01SCHED"}, "previous_users": [], "current_users": []}
        answers = [sender.send("schedule.shift_change_v1", shift) for _ in range(3)]
        answers.append(sender.send("public_incident.action_created_v1", {"id": "01ACTION"}))
        recorded = deliveries(daemon.runtime)
    assert {a.status_code for a in answers} == {200}
    assert {a.text for a in answers} == {"ignored: this event type is not handled\n"}
    assert recorded == []
    lines = [r.getMessage() for r in caplog.records if "webhook: ignoring" in r.getMessage()]
    assert len(lines) == 2
    assert "schedule.shift_change_v1" in lines[0]
    assert harness.sandbox.requests() == []  # nothing was asked of the API


def test_paused_automations_hold_what_a_webhook_would_apply(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """While paused, a webhook's due escalation is held like a cycle's (logged, not claimed);
    after resume, the next polling cycle applies it."""
    caplog.set_level(logging.INFO)
    harness.write(WEBHOOKS + ESCALATE)
    incident = harness.add("Due", age=3 * H, status="Investigating")
    with webhook_daemon(harness, monkeypatch) as (daemon, sender):
        ledger = daemon.runtime.ledger
        ledger.kill_switch.pause(by="test", reason="maintenance", now=daemon.runtime.engine.clock())
        sender.updated(incident["id"])
        wait_until(lambda: ledger.webhooks.backlog() == 0 and deliveries(ledger), "processing")
        held = harness.severity(incident["id"])
        claimed = ledger.events.get(f"escalate-minor/{incident['id']}/severity-major")
        ledger.kill_switch.resume()
        daemon._job("every 1h")
    assert held == "Minor"
    assert claimed is None
    assert any("PAUSED, not applied" in r.getMessage() for r in caplog.records)
    assert harness.severity(incident["id"]) == "Major"


def test_a_webhook_waits_for_a_running_cycle_but_is_answered_at_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a cycle holds the daemon's lock the delivery is answered 200 and stays queued;
    it is processed once the cycle is done, never beside it."""
    harness.write(WEBHOOKS + ESCALATE)
    incident = harness.add("Due", age=3 * H, status="Investigating")
    with webhook_daemon(harness, monkeypatch) as (daemon, sender):
        with daemon._lock:  # a long cycle
            response = sender.updated(incident["id"])
            (during,) = deliveries(daemon.runtime)
            edited_during = harness.posts()
        wait_until(lambda: harness.severity(incident["id"]) == "Major", "the escalation")
    assert response.status_code == 200
    assert during.state is WebhookDeliveryState.QUEUED
    assert edited_during == []


def test_deliveries_recorded_before_a_stop_are_processed_at_the_next_start(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery answered 200 but not yet processed when the daemon went away is found in
    the ledger and processed when it starts again."""
    harness.write(WEBHOOKS + ESCALATE)
    incident = harness.add("Due", age=3 * H, status="Investigating")
    with webhook_daemon(harness, monkeypatch, worker=False) as (daemon, sender):
        assert sender.updated(incident["id"]).status_code == 200
    assert harness.severity(incident["id"]) == "Minor"
    with webhook_daemon(harness, monkeypatch) as (daemon, _sender):
        wait_until(lambda: harness.severity(incident["id"]) == "Major", "the escalation")
        wait_until(lambda: daemon.runtime.ledger.webhooks.backlog() == 0, "processing")
        (delivery,) = deliveries(daemon.runtime)
    assert delivery.state is WebhookDeliveryState.PROCESSED


def test_changes_made_while_the_receiver_was_down_are_caught_by_polling(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoint is down when the incident changes (the delivery fails); the first polling
    cycle applies the escalation, and incident.io's later retry changes nothing more."""
    port = free_port()
    harness.write(WEBHOOKS.replace("port = 0", f"port = {port}") + ESCALATE)
    incident = harness.add("Due while down", age=3 * H, status="Triage")
    harness.sandbox.update_incident(incident["id"], status="Investigating")
    sender = Sender(harness, f"http://127.0.0.1:{port}/webhooks/incident-io")
    body = event_body(UPDATED, sender.api_incident(incident["id"]))
    with pytest.raises(httpx.ConnectError):
        sender.post(body, webhook_id="msg_while_down")
    with webhook_daemon(harness, monkeypatch) as (daemon, sender):
        daemon._job("every 1h")  # polling, the safety net
        polled = harness.severity(incident["id"])
        retry = sender.post(body, webhook_id="msg_while_down")
        wait_until(lambda: deliveries(daemon.runtime), "recorded")
        wait_until(lambda: daemon.runtime.ledger.webhooks.backlog() == 0, "processing")
        (delivery,) = deliveries(daemon.runtime)
    assert polled == "Major"
    assert retry.status_code == 200
    assert delivery.state is WebhookDeliveryState.PROCESSED
    assert len(harness.posts()) == 1


def test_an_unreachable_api_postpones_a_delivery_and_a_refusal_fails_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processing that meets an unreachable API is retried later (the row stays queued with
    the error and a later attempt time), then succeeds; a 403 on the incident fails it."""
    harness.write(WEBHOOKS + ESCALATE)
    flaky = harness.add("Flaky", age=3 * H, status="Investigating")
    hidden = harness.add("Hidden", age=3 * H, status="Investigating")
    with webhook_daemon(harness, monkeypatch, worker=False) as (daemon, sender):
        assert daemon.webhooks is not None
        worker = daemon.webhooks.worker
        sender.updated(flaky["id"])
        harness.sandbox.set_faults(
            next=[{"kind": "status", "status": 503}] * 3, paths=[f"/v2/incidents/{flaky['id']}"]
        )
        worker.drain()
        (postponed,) = deliveries(daemon.runtime)
        real_clock = worker.clock
        worker.clock = lambda: real_clock() + timedelta(minutes=1)  # the retry is due
        worker.drain()
        (retried,) = deliveries(daemon.runtime)
        sender.updated(hidden["id"])
        harness.sandbox.set_faults(
            next=[{"kind": "forbidden"}], paths=[f"/v2/incidents/{hidden['id']}"]
        )
        worker.drain()
        refused = deliveries(daemon.runtime)[1]
    assert postponed.state is WebhookDeliveryState.QUEUED
    assert postponed.attempts == 1
    assert postponed.next_attempt_at > postponed.received_at
    assert "503" in (postponed.last_error or "")
    assert retried.state is WebhookDeliveryState.PROCESSED
    assert harness.severity(flaky["id"]) == "Major"
    assert refused.state is WebhookDeliveryState.FAILED
    assert "cannot read" in (refused.last_error or "")
    assert harness.severity(hidden["id"]) == "Minor"


def test_metrics_count_deliveries_by_event_type_and_outcome(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/metrics shows deliveries by event type and outcome, and the webhook's applied action."""
    harness.write(WEBHOOKS + ESCALATE)
    incident = harness.add("Due", age=3 * H, status="Investigating")
    with webhook_daemon(harness, monkeypatch) as (daemon, sender):
        sender.send(STATUS_UPDATED, {"incident": sender.api_incident(incident["id"])})
        wait_until(lambda: harness.severity(incident["id"]) == "Major", "the escalation")
        wait_until(lambda: daemon.runtime.ledger.webhooks.backlog() == 0, "processing")
        sender.post(b"{}", {})
        # Counted just after the row is finished: wait for the count itself.
        wait_until(
            lambda: metric(daemon_metrics(daemon), STATUS_UPDATED, "processed") == 1, "the count"
        )
        metrics = daemon_metrics(daemon)
    assert metric(metrics, STATUS_UPDATED, "accepted") == 1
    assert metric(metrics, STATUS_UPDATED, "processed") == 1
    assert metric(metrics, "unverified", "refused") == 1
    assert 'automations_actions_total{outcome="applied",rule="escalate-minor"} 1.0' in metrics
    # The webhook's reads went through the daemon's one client: one rate-limit budget.
    reads = 'method="GET",route="/v2/incidents/{id}",status="200"'
    assert f"automations_api_requests_total{{{reads}}}" in metrics


def test_a_rule_that_counts_from_live_reads_the_updates_and_waits(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With since = "live", the webhook's evaluation fetches the incident's updates (as a cycle
    does): just moved to live, a 3h-old incident is not due; one live for 3h is escalated."""
    harness.write(WEBHOOKS + ESCALATE.replace("steps =", 'since = "live"\nsteps ='))
    just_live = harness.add("Just live", age=3 * H, status="Triage")
    long_live = harness.add("Long live", age=3 * H, status="Investigating")
    with webhook_daemon(harness, monkeypatch) as (daemon, sender):
        harness.sandbox.update_incident(just_live["id"], status="Investigating")
        for incident in (just_live, long_live):
            assert sender.updated(incident["id"]).status_code == 200
        wait_until(lambda: len(deliveries(daemon.runtime)) == 2, "both recorded")
        wait_until(lambda: daemon.runtime.ledger.webhooks.backlog() == 0, "processing")
    updates_asked = [
        r["query"] for r in harness.sandbox.requests() if r["path"] == "/v2/incident_updates"
    ]
    assert any(just_live["id"] in query for query in updates_asked)
    assert harness.severity(just_live["id"]) == "Minor"
    assert harness.severity(long_live["id"]) == "Major"


def test_a_reload_changes_the_rules_webhooks_run_but_not_the_endpoint(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGHUP's reload: the next delivery is judged by the new rules (a step moved to 4h leaves
    a 3h-old incident alone); a changed [webhooks] waits for a restart, and says so."""
    harness.write(WEBHOOKS + ESCALATE)
    incident = harness.add("Three hours", age=3 * H, status="Investigating")
    with webhook_daemon(harness, monkeypatch) as (daemon, sender):
        text = harness.config_path.read_text().replace('"2h"', '"4h"')
        harness.config_path.write_text(
            text.replace(
                "[webhooks]\nenabled = true\n", '[webhooks]\nenabled = true\npath = "/hooks/new"\n'
            )
        )
        with caplog.at_level(logging.INFO, logger="automations"):
            assert daemon.reload() is True
        answer = sender.updated(incident["id"])
        moved = httpx.post(sender.url.replace("/webhooks/incident-io", "/hooks/new"), content=b"{}")
        wait_until(
            lambda: daemon.runtime.ledger.webhooks.backlog() == 0 and deliveries(daemon.runtime),
            "processing",
        )
    assert answer.status_code == 200
    assert moved.status_code == 405  # not a webhook path: the listener takes GET and HEAD there
    assert harness.severity(incident["id"]) == "Minor"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "config reload: [webhooks] changed; kept as started until a restart" in warnings
