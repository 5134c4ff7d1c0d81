"""The sandbox sends incident.io's signed webhooks: one per change, retried, never blocking."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http_receiver import Receiver
from tests.openapi_conformance import Conformance
from tests.sandbox_server import SandboxControl
from tests.secret_values import WEBHOOK_KEY, WEBHOOK_SECRET

REPO = Path(__file__).resolve().parent.parent
FAST_RETRIES = [0.05, 0.1]
HANG_GUARD = 30.0  # only ends a test that would otherwise hang; never a timing assertion

CREATED = "public_incident.incident_created_v2"
UPDATED = "public_incident.incident_updated_v2"
STATUS = "public_incident.incident_status_updated_v2"
FOLLOW_UP_CREATED = "public_incident.follow_up_created_v2"
FOLLOW_UP_UPDATED = "public_incident.follow_up_updated_v2"


class Hooks:
    """The sandbox pointed at the receiver; ``take()`` waits for what one change sent."""

    def __init__(self, sandbox: SandboxControl, receiver: Receiver) -> None:
        self.sandbox = sandbox
        self.receiver = receiver
        self.seen = 0
        self.api = sandbox.api()
        self.severities = {s["name"]: s["id"] for s in self._get("/v1/severities")["severities"]}
        statuses = self._get("/v1/incident_statuses")["incident_statuses"]
        self.statuses = {s["name"]: s["id"] for s in statuses}

    def _get(self, path: str) -> Any:
        response = self.api.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def settle(self) -> None:
        """Wait until the sandbox has nothing queued or in flight."""
        deadline = time.monotonic() + HANG_GUARD
        while self.sandbox.webhooks()["pending"]:
            assert time.monotonic() < deadline, self.sandbox.webhooks()
            time.sleep(0.02)

    def take(self) -> list[dict[str, Any]]:
        """The verified bodies received since the last call (every one must verify)."""
        self.settle()
        new = self.receiver.received[self.seen :]
        self.seen = len(self.receiver.received)
        assert all(r.verify_error is None for r in new), [r.verify_error for r in new]
        return [r.verified for r in new]

    def create(self, **fields: Any) -> dict[str, Any]:
        body = {
            "idempotency_key": fields.pop("idempotency_key", str(uuid.uuid4())),
            "visibility": "public",
            "severity_id": self.severities["Minor"],
            **fields,
        }
        response = self.api.post("/v2/incidents", json=body)
        assert response.status_code == 200, response.text
        incident: dict[str, Any] = response.json()["incident"]
        return incident

    def edit(self, incident_id: str, **changes: Any) -> httpx.Response:
        body = {"incident": changes, "notify_incident_channel": False}
        return self.api.post(f"/v2/incidents/{incident_id}/actions/edit", json=body)

    def post_update(self, incident_id: str, **fields: Any) -> None:
        body = {"idempotency_key": str(uuid.uuid4()), "incident_id": incident_id, **fields}
        response = self.api.post("/v2/incident_updates", json=body)
        assert response.status_code == 201, response.text


@pytest.fixture
def hooks(sandbox: SandboxControl, receiver: Receiver) -> Iterator[Hooks]:
    """The sandbox sending to a verifying receiver, with a short retry schedule."""
    receiver.verify_with = WEBHOOK_SECRET
    sandbox.set_webhooks(
        f"{receiver.url}/webhooks/incident-io", WEBHOOK_SECRET, retry_delays=FAST_RETRIES
    )
    helper = Hooks(sandbox, receiver)
    try:
        yield helper
    finally:
        helper.api.close()


def types(bodies: list[dict[str, Any]]) -> Counter[str]:
    return Counter(body["event_type"] for body in bodies)


def payload(bodies: list[dict[str, Any]], event_type: str) -> dict[str, Any]:
    (found,) = [body[event_type] for body in bodies if body["event_type"] == event_type]
    result: dict[str, Any] = found
    return result


def test_every_delivery_is_signed_so_standardwebhooks_verifies_it(hooks: Hooks) -> None:
    """An API creation arrives once, signed (webhook-id, -timestamp, -signature) and verified."""
    incident = hooks.create(name="Checkout is down")
    hooks.settle()

    (received,) = hooks.receiver.received
    assert received.verify_error is None
    assert received.path == "/webhooks/incident-io"
    assert received.headers["webhook-id"].startswith("msg_")
    assert received.headers["webhook-signature"].startswith("v1,")
    assert received.headers["webhook-timestamp"].isdigit()
    assert received.headers["content-type"] == "application/json"
    assert received.verified["event_type"] == CREATED
    assert received.verified[CREATED]["id"] == incident["id"]
    assert received.verified[CREATED]["name"] == "Checkout is down"
    assert WEBHOOK_KEY not in str(hooks.sandbox.webhooks())


def test_deliveries_are_signed_in_the_sandbox_clocks_time(hooks: Hooks) -> None:
    """A sandbox whose clock was moved signs with it, as incident.io signs with its Date clock."""
    before = hooks.sandbox.advance_clock(86400)
    hooks.create(name="Tomorrow")
    hooks.settle()
    after = hooks.sandbox.now()

    (received,) = hooks.receiver.received
    signed_at = int(received.headers["webhook-timestamp"])
    assert int(before.timestamp()) <= signed_at <= int(after.timestamp())
    # so a receiver on the host's own clock refuses it: it is a day ahead of it
    assert received.verify_error is not None
    assert "too new" in received.verify_error


def test_each_change_sends_one_event_of_its_kind(hooks: Hooks, openapi: Conformance) -> None:
    """Creation, edit, status move, incident update, manual changes and follow-ups: right types."""
    incident = hooks.create(name="Payments slow")
    assert types(hooks.take()) == {CREATED: 1}

    assert hooks.edit(incident["id"], name="Payments very slow").status_code == 200
    bodies = hooks.take()
    assert types(bodies) == {UPDATED: 1}
    assert payload(bodies, UPDATED)["name"] == "Payments very slow"

    # a status change is an update too: both events, the status one saying from where to where
    assert (
        hooks.edit(incident["id"], incident_status_id=hooks.statuses["Fixing"]).status_code == 200
    )
    bodies = hooks.take()
    assert types(bodies) == {UPDATED: 1, STATUS: 1}
    moved = payload(bodies, STATUS)
    assert moved["previous_status"]["name"] == "Investigating"
    assert moved["new_status"]["name"] == "Fixing"
    assert moved["incident"]["incident_status"]["name"] == "Fixing"
    assert "message" not in moved

    hooks.post_update(incident["id"], message="Rolling back the deploy")
    bodies = hooks.take()
    assert types(bodies) == {UPDATED: 1}
    assert payload(bodies, UPDATED)["most_recent_update_message"] == "Rolling back the deploy"

    hooks.post_update(
        incident["id"], message="Fixed", to_incident_status_id=hooks.statuses["Documenting"]
    )
    bodies = hooks.take()
    assert types(bodies) == {UPDATED: 1, STATUS: 1}
    assert payload(bodies, STATUS)["message"] == "Fixed"
    assert payload(bodies, STATUS)["new_status"]["name"] == "Documenting"

    added = hooks.sandbox.add_incident(
        name="Found in the app", severity="Major", follow_ups=[{"title": "Write it up"}]
    )
    bodies = hooks.take()
    assert types(bodies) == {CREATED: 1, FOLLOW_UP_CREATED: 1}
    assert payload(bodies, FOLLOW_UP_CREATED)["incident_id"] == added["id"]
    follow_up_id = payload(bodies, FOLLOW_UP_CREATED)["id"]

    hooks.sandbox.update_incident(added["id"], severity="Critical")
    bodies = hooks.take()
    assert types(bodies) == {UPDATED: 1}
    assert payload(bodies, UPDATED)["severity"]["name"] == "Critical"

    # a follow-up change is the follow-up's event only, not an update of its incident
    hooks.sandbox.update_follow_up(follow_up_id, status="completed")
    bodies = hooks.take()
    assert types(bodies) == {FOLLOW_UP_UPDATED: 1}
    assert payload(bodies, FOLLOW_UP_UPDATED)["status"] == "completed"

    hooks.sandbox.update_incident(added["id"], follow_ups=[{"title": "Add an alert"}])
    assert types(hooks.take()) == {UPDATED: 1, FOLLOW_UP_CREATED: 1}

    for body in hooks.receiver.received:
        openapi.validate_webhook(body.verified)


def test_what_changes_nothing_sends_nothing(hooks: Hooks) -> None:
    """Reads, a replayed idempotency key, a refused edit and a clock move send no event."""
    incident = hooks.create(idempotency_key="same-key")
    assert len(hooks.take()) == 1

    hooks.create(idempotency_key="same-key")  # the replay answers the first incident
    refused = hooks.edit(incident["id"], incident_status_id=hooks.statuses["Triage"])
    assert refused.status_code == 422
    hooks.api.get("/v2/incidents", params={"page_size": 250})
    hooks.api.get(f"/v2/incidents/{incident['id']}")
    hooks.sandbox.advance_clock(3600)
    hooks.sandbox.incident(incident["id"])

    assert hooks.take() == []
    assert hooks.sandbox.webhooks()["delivered"] == 1


def test_private_incidents_send_only_their_id(hooks: Hooks, openapi: Conformance) -> None:
    """Every event about a private incident is its private_incident twin carrying only {id}."""
    secret = hooks.sandbox.add_incident(
        name="Leaked credentials", visibility="private", follow_ups=[{"title": "Rotate keys"}]
    )
    bodies = hooks.take()
    follow_up = next(f for f in bodies if "follow_up" in f["event_type"])
    follow_up_id = follow_up["private_incident.follow_up_created_v2"]["id"]
    assert sorted(bodies, key=lambda body: body["event_type"]) == [
        {
            "event_type": "private_incident.follow_up_created_v2",
            "private_incident.follow_up_created_v2": {"id": follow_up_id},
        },
        {
            "event_type": "private_incident.incident_created_v2",
            "private_incident.incident_created_v2": {"id": secret["id"]},
        },
    ]

    # a status change sends the private update only: there is no private status event
    hooks.sandbox.update_incident(secret["id"], status="Fixing", name="Rotating credentials")
    assert hooks.take() == [
        {
            "event_type": "private_incident.incident_updated_v2",
            "private_incident.incident_updated_v2": {"id": secret["id"]},
        }
    ]
    hooks.sandbox.update_follow_up(follow_up_id, status="completed")
    assert hooks.take() == [
        {
            "event_type": "private_incident.follow_up_updated_v2",
            "private_incident.follow_up_updated_v2": {"id": follow_up_id},
        }
    ]
    # made private after the fact: from then on, only the ID
    public = hooks.create(name="Was public")
    hooks.take()
    hooks.sandbox.update_incident(public["id"], visibility="private")
    assert [set(b[b["event_type"]]) for b in hooks.take()] == [{"id"}]
    assert "Leaked" not in str([r.body for r in hooks.receiver.received])

    for body in hooks.receiver.received:
        openapi.validate_webhook(body.verified)


def test_payloads_of_seeded_incidents_and_follow_ups_match_the_schema(
    hooks: Hooks, openapi: Conformance
) -> None:
    """Seeded incidents and follow-ups of every shape, changed, send schema-valid payloads."""
    incidents = hooks._get("/v2/incidents?page_size=40")["incidents"]
    follow_ups = hooks._get("/v3/follow_ups?page_size=40")["follow_ups"]
    for incident in incidents:
        hooks.sandbox.update_incident(incident["id"], summary="Checked by the schema test")
    for follow_up in follow_ups:
        hooks.sandbox.update_follow_up(follow_up["id"], title=follow_up["title"] + " (checked)")
    bodies = hooks.take()

    assert len(bodies) == len(incidents) + len(follow_ups)
    kinds = types(bodies)
    assert kinds[UPDATED]
    assert kinds[FOLLOW_UP_UPDATED]
    for body in bodies:
        openapi.validate_webhook(body)


def test_a_failed_delivery_is_retried_with_the_same_webhook_id(hooks: Hooks) -> None:
    """A receiver answering 500 then 200 gets the same webhook-id twice; the event is delivered."""
    hooks.receiver.statuses = [500]
    incident = hooks.create(name="Retry me")
    hooks.settle()

    first, second = hooks.receiver.received
    assert (first.status, second.status) == (500, 200)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    assert first.verify_error is None
    assert second.verify_error is None
    assert second.verified[CREATED]["id"] == incident["id"]
    state = hooks.sandbox.webhooks()
    (delivery,) = state["deliveries"]
    assert delivery["webhook_id"] == first.headers["webhook-id"]
    assert (delivery["state"], delivery["attempts"]) == ("delivered", ["500", "200"])
    assert (state["delivered"], state["failed"]) == (1, 0)


def test_delivery_gives_up_after_the_last_retry(hooks: Hooks) -> None:
    """Attempts stop once the retry schedule runs out: one first try plus one per delay."""
    hooks.receiver.statuses = [503] * 10
    hooks.create(name="Never accepted")
    hooks.settle()

    attempts = len(FAST_RETRIES) + 1
    assert len(hooks.receiver.received) == attempts
    assert len({r.headers["webhook-id"] for r in hooks.receiver.received}) == 1
    state = hooks.sandbox.webhooks()
    (delivery,) = state["deliveries"]
    assert (delivery["state"], delivery["attempts"]) == ("failed", ["503"] * attempts)
    assert (state["delivered"], state["failed"]) == (0, 1)


def test_a_receiver_that_never_answers_does_not_slow_the_api(
    sandbox: SandboxControl,
) -> None:
    """With a receiver that accepts connections and never answers, every API call still returns."""
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(64)  # connections queue in the kernel; nothing ever reads them
        port = blackhole.getsockname()[1]
        sandbox.set_webhooks(
            f"http://127.0.0.1:{port}/hook", WEBHOOK_SECRET, timeout_seconds=HANG_GUARD * 4
        )
        hooks = Hooks(sandbox, Receiver())
        incident = hooks.create(name="Nobody listens")
        for n in range(20):
            assert hooks.edit(incident["id"], name=f"Nobody listens ({n})").status_code == 200
        state = sandbox.webhooks()
        # all 21 still waiting on the silent receiver (4 in flight, the rest queued)
        assert state["pending"] == 21
        assert state["delivered"] == state["failed"] == 0
    # the listener is gone: in-flight attempts fail, the queue is dropped with the target
    sandbox.reset()
    assert sandbox.webhooks()["enabled"] is False
    hooks.api.close()


def test_the_control_api_refuses_bad_settings_without_quoting_the_secret(
    sandbox: SandboxControl, receiver: Receiver
) -> None:
    """A bad URL or secret is a 422 that says what is wrong and never echoes the secret."""
    control = httpx.Client(base_url=sandbox.base_url, timeout=HANG_GUARD)
    not_base64 = "whsec_" + WEBHOOK_KEY[:-6] + "!!!!!!"
    cases = {
        "ftp://example.com/hook": WEBHOOK_SECRET,
        receiver.url: WEBHOOK_KEY,  # the base64 part without whsec_
        receiver.url + "/": not_base64,
    }
    for url, secret in cases.items():
        response = control.post("/_sandbox/webhooks", json={"url": url, "secret": secret})
        assert response.status_code == 422, response.text
        assert WEBHOOK_KEY[:12] not in response.text
        assert "webhook" in response.json()["errors"][0]["message"]
    assert sandbox.webhooks()["enabled"] is False

    sandbox.set_webhooks(receiver.url, WEBHOOK_SECRET)
    shown = control.get("/_sandbox/webhooks").text
    assert WEBHOOK_KEY not in shown
    assert receiver.url in shown
    control.delete("/_sandbox/webhooks")
    sandbox.add_incident(name="Not sent")
    assert sandbox.webhooks()["enabled"] is False
    assert receiver.received == []
    control.close()


def test_the_sandbox_command_sends_to_webhook_url(receiver: Receiver, tmp_path: Path) -> None:
    """`automations sandbox --webhook-url` with the secret from the environment delivers events."""
    receiver.verify_with = WEBHOOK_SECRET
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "automations", "sandbox", "--port", str(port)]
    command += ["--incidents", "5", "--webhook-url", f"{receiver.url}/webhooks/incident-io"]
    env = {**os.environ, "AUTOMATIONS_WEBHOOK_SECRET": WEBHOOK_SECRET, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as server:
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + HANG_GUARD
            while True:
                try:
                    httpx.get(f"{base}/_sandbox", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline
                    assert server.poll() is None
                    time.sleep(0.1)
            control = SandboxControl(base)
            control.add_incident(name="From the command line")
            while not receiver.received:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            control.close()
        finally:
            server.terminate()
            output, _ = server.communicate(timeout=HANG_GUARD)
    (received,) = receiver.received
    assert received.verify_error is None
    assert received.verified[CREATED]["name"] == "From the command line"
    assert WEBHOOK_KEY not in output


def test_the_sandbox_command_refuses_a_url_without_a_good_secret() -> None:
    """--webhook-url without a secret, or with a malformed one, is a usage error naming it."""
    base = [sys.executable, "-m", "automations", "sandbox", "--webhook-url", "http://x/hook"]
    env = {k: v for k, v in os.environ.items() if k != "AUTOMATIONS_WEBHOOK_SECRET"}
    env["PYTHONPATH"] = str(REPO)
    missing = subprocess.run(base, env=env, capture_output=True, text=True, timeout=HANG_GUARD)
    bad = subprocess.run(
        [*base, "--webhook-secret", WEBHOOK_KEY],
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert missing.returncode == 2
    assert "--webhook-secret" in missing.stderr
    assert "AUTOMATIONS_WEBHOOK_SECRET" in missing.stderr
    assert bad.returncode == 2
    assert "whsec_" in bad.stderr
    assert WEBHOOK_KEY not in bad.stderr
