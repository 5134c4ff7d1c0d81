"""The email channel through a real SMTP server (aiosmtpd): what arrives, and how refusals map."""

from __future__ import annotations

from pathlib import Path

import pytest

from automations.config import load_config
from automations.errors import NotifyRejected, NotifyRetryable
from automations.notify.channels.build import build_senders
from automations.notify.notice import NOTICE
from automations.notify.sender import Sender
from tests.channel_support import HOSTILE, hostile_notice, write_toml
from tests.digest_support import SMTP_TABLE, SMTPServer, free_port, parts

KEY = "escalate-stuck-minor/01HOSTILE0000000000000000/1"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quotes&#34;"
CHANNEL = """
[[channels]]
name = "leadership"
type = "email"
to = ["CTO <cto@example.com>"]
cc = ["vp@example.com"]
bcc = ["archive@example.com"]
"""


def email_sender(tmp_path: Path, port: int, extra: str = "") -> Sender:
    path = write_toml(tmp_path, SMTP_TABLE.format(port=port) + CHANNEL + extra)
    return build_senders(load_config(path), None)["leadership"]


def test_a_notice_arrives_as_text_and_html_with_the_name_escaped_only_in_html(
    tmp_path: Path, smtp: SMTPServer
) -> None:
    """Subject, text and HTML parts; the hostile name is intact in text, escaped in HTML."""
    email_sender(tmp_path, smtp.port).send(hostile_notice(KEY), key=KEY)
    (mail,) = smtp.received
    assert mail.rcpt_tos == ["cto@example.com", "vp@example.com", "archive@example.com"]
    message = mail.message
    # Folded before its first word (legal; clients unfold and trim the leading space).
    assert message["Subject"].strip() == f"INC-42 {HOSTILE}: escalate by escalate-stuck-minor"
    assert message["To"] == "CTO <cto@example.com>"
    assert message["Cc"] == "vp@example.com"
    assert message["Bcc"] is None
    assert message["X-Automations-Channel"] == "leadership"
    assert message["Auto-Submitted"] == "auto-generated"
    text, html = parts(message)
    assert f"INC-42: {HOSTILE}" in text
    assert "Why: live for 2h; severity Minor -> Major" in text
    assert "https://app.incident.io/acme/incidents/42" in text
    assert "<script>" not in html
    assert f"<title>INC-42 {ESCAPED}: escalate" in html  # the shared headline too
    assert f"INC-42</a> · {ESCAPED}" in html
    assert '<a href="https://app.incident.io/acme/incidents/42"' in html


def test_the_message_id_is_the_same_for_a_resend_and_differs_per_notification(
    tmp_path: Path, smtp: SMTPServer
) -> None:
    """A crash between send and record resends the same Message-ID; another key, another one."""
    sender = email_sender(tmp_path, smtp.port)
    sender.send(hostile_notice(KEY), key=KEY)
    sender.send(hostile_notice(KEY), key=KEY)
    sender.send(hostile_notice(KEY + "x"), key=KEY + "x")
    ids = [mail.message["Message-ID"] for mail in smtp.received]
    assert ids[0] == ids[1] != ids[2]
    assert ids[0].endswith("@example.com>")


def test_every_recipient_refused_for_good_is_rejected(tmp_path: Path, smtp: SMTPServer) -> None:
    """550 for every recipient: resending cannot help, NotifyRejected."""
    smtp.handler.reject = lambda _address: "550 5.1.1 No such user"
    with pytest.raises(NotifyRejected, match=r"550 5\.1\.1"):
        email_sender(tmp_path, smtp.port).send(hostile_notice(KEY), key=KEY)


def test_greylisting_and_a_server_down_are_retryable(tmp_path: Path, smtp: SMTPServer) -> None:
    """A 4xx for every recipient, or nothing listening: NotifyRetryable."""
    smtp.handler.reject = lambda _address: "451 4.7.1 Greylisted, try later"
    with pytest.raises(NotifyRetryable, match=r"451 4\.7\.1"):
        email_sender(tmp_path, smtp.port).send(hostile_notice(KEY), key=KEY)
    down = tmp_path / "down"
    down.mkdir()
    with pytest.raises(NotifyRetryable, match="cannot connect"):
        email_sender(down, free_port()).send(hostile_notice(KEY), key=KEY)
    assert smtp.received == []


def test_templates_dir_replaces_a_part_for_all_events_or_for_one(
    tmp_path: Path, smtp: SMTPServer
) -> None:
    """templates_dir: email.subject.j2 replaces every subject, email.incident.notice.txt.j2
    the text of one event type only."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "email.subject.j2").write_text(
        "[ops] {% if incident %}{{ incident.reference }} {{ incident.name }}{% endif %}"
    )
    (mine / "email.incident.notice.txt.j2").write_text("Notice: {{ notice.reason }}\n")
    sender = email_sender(tmp_path, smtp.port, 'templates_dir = "mine"\n')
    applied = hostile_notice(KEY)
    noticed = hostile_notice("notice-rule/01HOSTILE0000000000000000/1")
    noticed = type(noticed)(**{**noticed.__dict__, "type": NOTICE})
    sender.send(applied, key=applied.event_key)
    sender.send(noticed, key=noticed.event_key)
    first, second = (mail.message for mail in smtp.received)
    assert first["Subject"].strip() == second["Subject"].strip() == f"[ops] INC-42 {HOSTILE}"
    assert parts(first)[0].startswith("INC-42 ")  # the built-in text for action.applied
    assert parts(second)[0].rstrip() == f"Notice: {noticed.reason}"
    assert "<script>" not in parts(second)[1]  # the built-in HTML still escapes
