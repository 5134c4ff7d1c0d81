"""The demo's webhook receiver verifies with standardwebhooks, keeps each delivery once."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
from standardwebhooks import Webhook

from automations.clock import host_now
from automations.sandbox.webhook_sink import WebhookSink

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def signed(msg_id: str, body: str, secret: str = SECRET) -> dict[str, str]:
    now = host_now()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
        "content-type": "application/json",
    }


def test_verified_once_forged_refused(tmp_path: Path) -> None:
    """A signed delivery is kept as <id>.json; its retry is not kept twice; a forgery gets 401."""
    sink = WebhookSink(tmp_path / "webhooks", SECRET).start()
    try:
        body = json.dumps({"type": "action.applied", "data": {"name": '<b>x</b> & "y"'}})
        first = httpx.post(sink.url, content=body, headers=signed("esc/01X/severity-1", body))
        again = httpx.post(sink.url, content=body, headers=signed("esc/01X/severity-1", body))
        other = "whsec_" + base64.b64encode(b"another-key-another-key-another!").decode()
        forged = httpx.post(sink.url, content=body, headers=signed("k2", body, other))
        unsigned = httpx.post(sink.url, content=body)
    finally:
        sink.stop()
    assert [first.status_code, again.status_code] == [204, 204]
    assert [forged.status_code, unsigned.status_code] == [401, 401]
    (kept,) = sorted((tmp_path / "webhooks").iterdir())
    assert kept.name == "esc_01X_severity-1.json"
    assert json.loads(kept.read_text())["data"]["name"] == '<b>x</b> & "y"'
    assert len(sink.received) == 1
    assert sink.refused == 2
