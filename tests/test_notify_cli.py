"""`automations notify test CHANNEL`: a sample straight to the channel; 0 sent, 1 not, 78 config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from automations.sandbox import SandboxThread
from tests.channel_support import write_toml
from tests.digest_support import SMTP_TABLE, SMTPServer
from tests.http_receiver import Receiver
from tests.sandbox_server import SandboxControl
from tests.secret_values import SANDBOX_KEY, WEBHOOK_KEY, WEBHOOK_SECRET


def notify_test(
    path: Path, channel: str, unset: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """The command in a subprocess; ``unset`` drops the variables starting with it."""
    base = {k: v for k, v in os.environ.items() if unset is None or not k.startswith(unset)}
    return subprocess.run(
        [sys.executable, "-m", "automations", "notify", "test", channel, "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **env},
    )


def hook_config(folder: Path, url: str) -> Path:
    return write_toml(folder, f'[[channels]]\nname = "ops-hook"\ntype = "webhook"\nurl = "{url}"\n')


def test_a_webhook_test_is_signed_marked_as_a_test_and_reported(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Exit 0 and one line saying where; the receiver verifies a TEST notice, made-up incident."""
    receiver.verify_with = WEBHOOK_SECRET
    path = hook_config(tmp_path, f"{receiver.url}/in")
    result = notify_test(path, "ops-hook", AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET=WEBHOOK_SECRET)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"channel ops-hook: test notification accepted (POSTed to {receiver.url}/in)\n"
    )
    (got,) = receiver.received
    assert got.verify_error is None
    assert got.verified["type"] == "notifications.test"
    assert got.verified["data"]["incident"]["name"].endswith("(not a real incident)")
    assert got.headers["webhook-id"].startswith("notify-test/ops-hook/")
    assert WEBHOOK_KEY not in result.stdout + result.stderr


def test_a_refused_test_exits_1_with_the_reason(tmp_path: Path, receiver: Receiver) -> None:
    """The receiver answers 410: exit 1, the status in one line, no traceback."""
    receiver.statuses = [410]
    path = hook_config(tmp_path, f"{receiver.url}/in")
    result = notify_test(path, "ops-hook", AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET=WEBHOOK_SECRET)
    assert result.returncode == 1
    assert result.stderr == (
        f"channel ops-hook: test not delivered: webhook ops-hook ({receiver.url}/in): "
        "HTTP 410 Gone: refused, not retried\n"
    )
    assert len(receiver.received) == 1


def test_configuration_problems_exit_78(tmp_path: Path, receiver: Receiver) -> None:
    """No such channel, or no secret: exit 78 naming it; nothing is sent."""
    path = hook_config(tmp_path, f"{receiver.url}/in")
    unknown = notify_test(path, "nope", AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET=WEBHOOK_SECRET)
    assert unknown.returncode == 78
    assert unknown.stderr == f"error: {path}: no channel named 'nope'; channels: ops-hook\n"
    secretless = notify_test(path, "ops-hook", unset="AUTOMATIONS_CHANNEL_")
    assert secretless.returncode == 78
    assert "channels[0]: webhook 'ops-hook' has no signing secret" in secretless.stderr
    assert receiver.received == []


def test_an_escalation_test_pages_through_the_api(
    tmp_path: Path, sandbox: SandboxControl, sandbox_server: SandboxThread
) -> None:
    """An escalation channel: the API key from the environment, one real escalation, exit 0."""
    path = write_toml(
        tmp_path,
        f'[incident_io]\nbase_url = "{sandbox.base_url}"\nmax_clock_skew = "off"\n\n'
        '[[channels]]\nname = "page"\ntype = "escalation"\nescalation_path = "Payments urgent"\n',
    )
    result = notify_test(path, "page", INCIDENT_IO_API_KEY=SANDBOX_KEY)
    assert result.returncode == 0, result.stderr
    assert "escalation created on the path 'Payments urgent'" in result.stdout
    (made,) = sandbox_server.app.state.sandbox.oncall.escalations
    assert made.title == "Test notification from automations"
    assert SANDBOX_KEY not in result.stdout + result.stderr


def test_the_incident_timeline_is_not_a_channel_to_test(tmp_path: Path, receiver: Receiver) -> None:
    """`@incident` needs a real incident: it is not offered (exit 78, the channels listed)."""
    result = notify_test(hook_config(tmp_path, receiver.url), "@incident")
    assert result.returncode == 78
    assert "no channel named '@incident'; channels: ops-hook" in result.stderr


def test_an_email_test_is_mailed_and_a_missing_password_exits_78(
    tmp_path: Path, smtp: SMTPServer
) -> None:
    """Exit 0 with the recipients and server; a login without its password is a config error."""
    body = SMTP_TABLE.format(port=smtp.port) + (
        '[[channels]]\nname = "leadership"\ntype = "email"\nto = ["cto@example.com"]\n'
    )
    path = write_toml(tmp_path, body)
    result = notify_test(path, "leadership")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "channel leadership: test notification accepted "
        f"(mailed to cto@example.com via 127.0.0.1:{smtp.port})\n"
    )
    (mail,) = smtp.received
    assert mail.message["Subject"] == "Test notification from automations"
    login = write_toml(tmp_path, body.replace("[smtp]\n", '[smtp]\nusername = "bot"\n'), "b.toml")
    refused = notify_test(login, "leadership", unset="AUTOMATIONS_SMTP_PASSWORD")
    assert refused.returncode == 78
    assert "smtp.username: 'bot' logs in, so its password must be in" in refused.stderr
    assert len(smtp.received) == 1
