"""What the webhook endpoint refuses: unsigned, forged, stale and oversized deliveries get
401/413 over real HTTP, record nothing, change nothing, and are logged at most once a minute."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from tests.engine_harness import Harness
from tests.secret_values import INCOMING_SECRET, ROTATED_SECRET
from tests.webhook_support import (
    ESCALATE,
    UPDATED,
    WEBHOOKS,
    daemon_metrics,
    deliveries,
    event_body,
    incident_reads,
    signed,
    wait_until,
    webhook_daemon,
)

H = timedelta(hours=1)
OTHER_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="  # not the daemon's
BODY_MARKER = "Payload-Marker-3vQ9"  # text inside refused bodies: must never reach a log


def refused_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "webhook refused" in r.getMessage()]


def test_unsigned_forged_and_stale_deliveries_get_401_and_change_nothing(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Each way a delivery can fail to verify is a 401: nothing is recorded, the incident is
    neither read nor edited, and the log says so once (the rest counted), without the body."""
    caplog.set_level(logging.INFO)
    harness.write(WEBHOOKS + ESCALATE)
    incident = harness.add("Due now", age=3 * H, status="Investigating")
    with webhook_daemon(harness, monkeypatch) as (daemon, sender):
        payload = {**sender.api_incident(incident["id"]), "summary": BODY_MARKER}
        body = event_body(UPDATED, payload)
        now = harness.sandbox.now()
        good = signed(body, at=now, webhook_id="msg_good")
        tampered = body.replace(BODY_MARKER.encode(), b"Payload-Marker-XXXX")
        attempts = {
            "unsigned": {"content-type": "application/json"},
            "no signature": {k: v for k, v in good.items() if k != "webhook-signature"},
            "other secret": signed(body, at=now, secret=OTHER_SECRET),
            "stale": signed(body, at=now - timedelta(minutes=6)),
            "future": signed(body, at=now + timedelta(minutes=6)),
            "not a time": {**good, "webhook-timestamp": "yesterday"},
            "garbled signature": {**good, "webhook-signature": "v1 not-base64!"},
            "other id": {**good, "webhook-id": "msg_other"},  # the signature covers the id
            "other timestamp": {**good, "webhook-timestamp": str(int(now.timestamp()) - 1)},
        }
        answers = {
            what: sender.post(body, headers).status_code for what, headers in attempts.items()
        }
        tampered_answer = sender.post(tampered, good).status_code
        recorded = deliveries(daemon.runtime)
        metrics = daemon_metrics(daemon)
    assert answers == dict.fromkeys(attempts, 401)
    assert tampered_answer == 401
    assert recorded == []
    assert incident_reads(harness, incident["id"]) == 1  # the test's own read, nothing else
    assert harness.posts() == []
    lines = refused_lines(caplog)
    assert len(lines) == 1, lines  # ten refusals in a minute: one line
    assert "webhook refused (401): webhook-id, webhook-timestamp or webhook-signature" in lines[0]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert BODY_MARKER not in logged
    assert (
        'automations_webhook_deliveries_total{event_type="unverified",outcome="refused"} 10.0'
        in metrics
    )


def test_the_refusal_line_counts_what_it_did_not_log(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """After the quiet minute, the next refusal is logged with how many went unlogged."""
    harness.write(WEBHOOKS + ESCALATE)
    with webhook_daemon(harness, monkeypatch) as (daemon, sender):
        assert daemon.webhooks is not None
        refusals = daemon.webhooks.receiver.refusals
        for _ in range(3):
            sender.post(b"{}", {"content-type": "application/json"})
        refusals._last = (refusals._last or 0.0) - refusals.every  # the minute has passed
        sender.post(b"{}", signed(b"{}", at=harness.sandbox.now(), secret=OTHER_SECRET))
    lines = refused_lines(caplog)
    assert len(lines) == 2
    assert "2 more refused in the last minute (not logged)" in lines[1]
    assert "no signature matches any configured secret" in lines[1]


def test_oversized_deliveries_get_413_before_they_are_verified(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over max_body_bytes, by declared length or by bytes sent (chunked), a delivery is
    refused with 413 even when properly signed; nothing is recorded and the listener goes on."""
    harness.write(WEBHOOKS + "max_body_bytes = 8192\n" + ESCALATE)
    incident = harness.add("Due now", age=3 * H, status="Investigating")
    with webhook_daemon(harness, monkeypatch) as (daemon, sender):
        payload = {**sender.api_incident(incident["id"]), "summary": "x" * 10_000}
        body = event_body(UPDATED, payload)
        headers = signed(body, at=harness.sandbox.now())
        declared = sender.post(body, headers)

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(body), 512):
                yield body[start : start + 512]

        chunked = httpx.post(sender.url, content=chunks(), headers=headers, timeout=10)
        small = sender.updated(incident["id"])  # the same incident, under the limit: fine
        wait_until(lambda: harness.severity(incident["id"]) == "Major", "the small one's edit")
        assert daemon.health_server is not None
        health = httpx.get(f"{daemon.health_server.url}/healthz")
        recorded = deliveries(daemon.runtime)
    assert declared.status_code == 413
    assert "chunked" in chunked.request.headers.get("transfer-encoding", "")
    assert chunked.status_code == 413
    assert small.status_code == 200
    assert health.status_code == 200
    assert len(recorded) == 1  # only the small one


def test_a_413_reaches_a_client_still_sending(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer to an oversized body is read by a client that sends all of it first (the
    connection is closed after the client finished, not reset under it)."""
    harness.write(WEBHOOKS + ESCALATE)
    with webhook_daemon(harness, monkeypatch) as (daemon, _sender):
        assert daemon.health_server is not None
        host, port = daemon.health_server.address
        body = b"x" * (3 * 1024 * 1024)
        head = (
            f"POST {daemon.runtime.config.webhooks.path} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(head + body)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in answer.lower()


def test_signed_bodies_that_are_not_events_get_400(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verified but unreadable (not JSON, no event_type, no incident ID): 400, nothing recorded."""
    harness.write(WEBHOOKS + ESCALATE)
    with webhook_daemon(harness, monkeypatch) as (daemon, sender):
        bodies = [
            b"not json",
            b"[1, 2]",
            json.dumps({"no": "type"}).encode(),
            event_body(UPDATED, {"name": "no id"}),
            event_body(UPDATED, {"id": "../../etc/passwd"}),
            json.dumps({"event_type": UPDATED}).encode(),
        ]
        answers = [sender.post(body).status_code for body in bodies]
        recorded = deliveries(daemon.runtime)
    assert answers == [400] * len(bodies)
    assert recorded == []


def test_deliveries_signed_with_either_secret_of_a_rotation_are_accepted(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AUTOMATIONS_WEBHOOK_SECRET holding the old and the new secret accepts both; a
    signature header with several signatures passes when one of them matches."""
    harness.write(WEBHOOKS + ESCALATE)
    incident = harness.add("Rotating", age=1 * H, status="Investigating")
    both = f"{INCOMING_SECRET} {ROTATED_SECRET}"
    with webhook_daemon(harness, monkeypatch, secret=both) as (daemon, sender):
        old = sender.updated(incident["id"], secret=INCOMING_SECRET)
        new = sender.updated(incident["id"], secret=ROTATED_SECRET)
        body = event_body(UPDATED, {"id": incident["id"]})
        now = harness.sandbox.now()
        mixed = signed(body, at=now, webhook_id="msg_mixed", secret=OTHER_SECRET)
        rotated = signed(body, at=now, webhook_id="msg_mixed", secret=ROTATED_SECRET)
        mixed["webhook-signature"] += " " + rotated["webhook-signature"]
        several = sender.post(body, mixed)
        stranger = sender.updated(incident["id"], secret=OTHER_SECRET)
        recorded = deliveries(daemon.runtime)
    assert [old.status_code, new.status_code, several.status_code] == [200, 200, 200]
    assert stranger.status_code == 401
    assert len(recorded) == 3


def test_a_client_that_expects_100_continue_is_told_to_send_the_body(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Expect: 100-continue` within the limit gets 100 Continue, then the delivery's answer;
    over the limit it gets 413 without sending the body at all."""
    harness.write(WEBHOOKS + ESCALATE)
    with webhook_daemon(harness, monkeypatch) as (daemon, _sender):
        assert daemon.health_server is not None
        host, port = daemon.health_server.address
        path = daemon.runtime.config.webhooks.path
        body = event_body(UPDATED, {"id": "01EXPECTED"})
        headers = signed(body, at=harness.sandbox.now())
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

        def exchange(length: int, then: bytes) -> tuple[bytes, bytes]:
            with socket.create_connection((host, port), timeout=10) as sock:
                sock.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n{head}"
                    f"Content-Length: {length}\r\n\r\n".encode()
                )
                first = sock.recv(65536)
                if then:
                    sock.sendall(then)
                    rest = b""
                    while not rest.endswith(b"queued\n") and (chunk := sock.recv(65536)):
                        rest += chunk
                    return first, rest
                return first, b""

        continued, answer = exchange(len(body), body)
        too_large, _ = exchange(2 * 1024 * 1024, b"")
        recorded = deliveries(daemon.runtime)
    assert continued.startswith(b"HTTP/1.1 100 ")
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"queued\n")
    assert too_large.startswith(b"HTTP/1.1 413 ")
    assert len(recorded) == 1
