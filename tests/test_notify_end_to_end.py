"""Notifications end to end: the real CLI against the sandbox, a real SMTP server and a real
webhook receiver verifying signatures; exactly once across runs, kill -9 and outages."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.digest_support import SMTP_TABLE, SMTPServer, parts
from tests.engine_harness import Harness
from tests.http_receiver import Receiver

SECRET = "whsec_" + base64.b64encode(b"end-to-end-secret-of-32-bytes!!!").decode()
HOSTILE = '</p><script>alert("x")</script> & {"json": "break"}'
RULES = """
[[channels]]
name = "team-mail"
type = "email"
to = ["oncall@example.com"]

[[channels]]
name = "ops-hook"
type = "webhook"
url = "{url}/hooks"

[[channels]]
name = "chat"
type = "apprise"
urls = ["json://127.0.0.1:{port}/apprise"]

[[channels]]
name = "page"
type = "escalation"
escalation_path = "Platform primary"

[[rules]]
name = "esc"
type = "escalate_severity"
every = "1m"
where = {{ status_category = ["live"], severity = ["Minor"] }}
steps = [ {{ after = "2h", to = "Major" }} ]
notify = ["team-mail", "ops-hook", "chat", "page"]
announce = "Escalated automatically: {{{{ reason }}}}"
"""


def setup(harness: Harness, smtp: SMTPServer, receiver: Receiver) -> None:
    receiver.verify_with = SECRET
    rules = RULES.format(url=receiver.url, port=receiver.port)
    harness.write(SMTP_TABLE.format(port=smtp.port) + rules)


def once(harness: Harness, failpoint: str | None = None) -> Any:
    if failpoint is None:
        return harness.cli("once", AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET=SECRET)
    return harness.cli(
        "once", AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET=SECRET, AUTOMATIONS_FAILPOINTS=failpoint
    )


def timeline(harness: Harness) -> list[dict[str, Any]]:
    """The incident updates the daemon posted (its announce messages)."""
    return [
        r["body"]
        for r in harness.sandbox.requests()
        if r["method"] == "POST" and r["path"] == "/v2/incident_updates"
    ]


def hooks(receiver: Receiver) -> list[Any]:
    """Deliveries that verified with standardwebhooks and were accepted."""
    return [r for r in receiver.received if r.verified is not None and r.status < 300]


def chats(receiver: Receiver) -> list[Any]:
    """What apprise posted through json://."""
    return [r.json() for r in receiver.received if r.path == "/apprise"]


def pages(harness: Harness) -> list[str]:
    """The idempotency keys of the escalations the daemon asked for."""
    return [
        r["body"]["idempotency_key"]
        for r in harness.sandbox.requests()
        if r["method"] == "POST" and r["path"] == "/v2/escalations"
    ]


def delivered(harness: Harness, smtp: SMTPServer, receiver: Receiver) -> tuple[int, ...]:
    """How many deliveries each of mail, webhook, apprise, distinct pages and timeline got."""
    return (
        len(smtp.received),
        len(hooks(receiver)),
        len(chats(receiver)),
        len(set(pages(harness))),
        len(timeline(harness)),
    )


def test_an_escalation_is_announced_once_everywhere(
    harness: Harness, smtp: SMTPServer, receiver: Receiver
) -> None:
    """Mail, signed webhook and incident update, once each; a second run sends nothing more;
    the hostile name is escaped in HTML and intact in JSON; a private incident reaches only
    its own timeline."""
    setup(harness, smtp, receiver)
    public = harness.add(HOSTILE, age=timedelta(hours=3))
    private = harness.add("Secret merger", age=timedelta(hours=3), visibility="private")
    first = once(harness)
    assert first.returncode == 0, first.stderr
    assert {harness.severity(public["id"]), harness.severity(private["id"])} == {"Major"}

    (hook,) = hooks(receiver)
    assert hook.headers["webhook-id"] == f"esc/{public['id']}/severity-{hook_target(hook)}"
    body = hook.verified
    assert body["type"] == "action.applied"
    assert body["data"]["incident"]["name"] == HOSTILE
    assert body["data"]["rule"] == "esc"
    assert "Secret merger" not in json.dumps([r.json() for r in receiver.received])

    (mail,) = smtp.received
    text, html = parts(mail.message)
    assert HOSTILE in text
    assert "<script>" not in html
    assert "Secret merger" not in mail.message.as_string()

    posted = timeline(harness)
    assert sorted(p["incident_id"] for p in posted) == sorted([public["id"], private["id"]])
    assert all(p["message"].startswith("Escalated automatically: open for ") for p in posted)
    assert len({p["idempotency_key"] for p in posted}) == 2

    (chat,) = chats(receiver)
    assert chat["title"].startswith("INC-1 raised to Major: ")
    assert "<script>" not in chat["message"]
    assert len(pages(harness)) == 1

    again = once(harness)
    assert again.returncode == 0, again.stderr
    assert delivered(harness, smtp, receiver) == (1, 1, 1, 1, 2)


def hook_target(hook: Any) -> str:
    """The severity ID the event key ends with (the webhook body names the severity)."""
    return str(hook.headers["webhook-id"].rsplit("severity-", 1)[1])


@pytest.mark.parametrize("point", ["after_edit", "after_confirm"])
def test_kill_9_between_the_edit_and_the_send_loses_nothing_and_sends_once(
    harness: Harness, smtp: SMTPServer, receiver: Receiver, point: str
) -> None:
    """Killed after the edit landed (before it was recorded) or after it was recorded (before
    any send): the next run reconciles or just delivers; every channel gets it once."""
    setup(harness, smtp, receiver)
    item = harness.add("Checkout down", age=timedelta(hours=3))
    killed = once(harness, point)
    assert killed.returncode == 137, killed.stderr
    assert harness.severity(item["id"]) == "Major"
    assert delivered(harness, smtp, receiver) == (0, 0, 0, 0, 0)

    recovered = once(harness)
    assert recovered.returncode == 0, recovered.stderr
    assert delivered(harness, smtp, receiver) == (1, 1, 1, 1, 1)
    assert len(harness.posts()) == 1  # the edit itself was never sent twice
    once(harness)
    assert delivered(harness, smtp, receiver) == (1, 1, 1, 1, 1)
    assert len(chats(receiver)) == 1


def test_a_receiver_down_then_up_gets_it_once_with_the_same_id(
    harness: Harness, smtp: SMTPServer, receiver: Receiver
) -> None:
    """503 first: the webhook stays queued (mail goes); after the backoff the retry carries
    the same webhook-id and is delivered once."""
    setup(harness, smtp, receiver)
    harness.add("Checkout down", age=timedelta(hours=3))
    receiver.statuses = [503]
    first = once(harness)
    assert first.returncode == 0, first.stderr
    assert len(smtp.received) == 1
    webhook = [r for r in receiver.received if r.path == "/hooks"]
    assert [r.status for r in webhook] == [503]
    harness.sandbox.advance_clock(timedelta(minutes=2).total_seconds())
    second = once(harness)
    assert second.returncode == 0, second.stderr
    webhook = [r for r in receiver.received if r.path == "/hooks"]
    assert [r.status for r in webhook] == [503, 200]
    ids = {r.headers["webhook-id"] for r in webhook}
    assert len(ids) == 1
    history = harness.cli("history", "--notifications", "--channel", "ops-hook")
    assert "sent" in history.stdout, history.stdout
    assert "2 attempts" in history.stdout, history.stdout


def test_plan_lists_the_notifications(
    harness: Harness, smtp: SMTPServer, receiver: Receiver, tmp_path: Path
) -> None:
    """The dry run names the channels and the incident update it would post."""
    setup(harness, smtp, receiver)
    harness.add("Checkout down", age=timedelta(hours=3))
    harness.add("Secret merger", age=timedelta(hours=3), visibility="private")
    planned = harness.cli("plan", AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET=SECRET)
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.count("notify: team-mail, ops-hook, chat, page") == 1
    assert "not notified (private incident, no include_private): team-mail, ops-hook, chat" in (
        planned.stdout
    )
    assert "announce (incident update): Escalated automatically: open for " in planned.stdout
    assert receiver.received == []


NOTICE_RULE = """
[[channels]]
name = "ops-hook"
type = "webhook"
url = "{url}/hooks"

[[rules]]
name = "live-1h"
type = "notice"
every = "1m"
where = {{ status_category = ["live"] }}
after = "1h"
channels = ["ops-hook"]
message = "Live for over an hour"
"""


def test_a_notice_rule_announces_without_editing(harness: Harness, receiver: Receiver) -> None:
    """A notice changes nothing on the incident and is delivered once per stretch."""
    receiver.verify_with = SECRET
    harness.write(NOTICE_RULE.format(url=receiver.url))
    old = harness.add("Old one", age=timedelta(hours=2))
    harness.add("Young one", age=timedelta(minutes=10))
    for _ in range(2):
        result = once(harness)
        assert result.returncode == 0, result.stderr
    (hook,) = hooks(receiver)
    body = hook.verified
    assert body["type"] == "incident.notice"
    assert body["data"]["incident"]["id"] == old["id"]
    assert body["data"]["reason"].startswith("Live for over an hour: open for ")
    assert harness.posts() == []
    assert harness.severity(old["id"]) == "Minor"


def test_a_notification_refused_for_good_fails_once_and_once_exits_1(
    harness: Harness, smtp: SMTPServer, receiver: Receiver
) -> None:
    """410 from the webhook receiver: `once` exits 1 (cron reports it), the row is failed and
    the next run neither retries it nor fails again."""
    setup(harness, smtp, receiver)
    harness.add("Checkout down", age=timedelta(hours=3))
    receiver.statuses = [410]
    first = once(harness)
    second = once(harness)
    assert first.returncode == 1, first.stderr
    assert second.returncode == 0, second.stderr
    assert len([r for r in receiver.received if r.path == "/hooks"]) == 1
    failed = harness.cli("history", "--notifications", "--state", "failed")
    assert "ops-hook" in failed.stdout, failed.stdout
    assert "410" in failed.stdout, failed.stdout
