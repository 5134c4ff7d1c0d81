"""`automations digest preview|send` and `once` sending a due digest, against the sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from automations.cli import cli
from automations.errors import ConfigError
from automations.ledger import Ledger, OutboxState
from tests.digest_support import SMTPServer, in_use_since, write_config
from tests.sandbox_server import SandboxControl
from tests.secret_values import SANDBOX_KEY

ENV = {"INCIDENT_IO_API_KEY": SANDBOX_KEY}


@pytest.fixture
def org(sandbox: SandboxControl) -> SandboxControl:
    sandbox.reset(incidents=0)
    sandbox.add_incident(name="Checkout latency", status="Investigating", severity="Critical")
    return sandbox


pytestmark = pytest.mark.usefixtures("restore_logging")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=ENV)


def test_preview_writes_html_without_touching_the_ledger(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """The real command: HTML to --out, subject on stderr, nothing sent, no ledger created."""
    path = write_config(tmp_path, org.base_url, smtp.port)
    out = tmp_path / "digest.html"
    command = [sys.executable, "-m", "automations", "digest", "preview", "daily"]
    result = subprocess.run(
        [*command, "--config", str(path), "--out", str(out)],
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert 'Subject: Daily digest "daily" · ' in result.stderr
    assert f"wrote {out}" in result.stderr
    html = out.read_text()
    assert "Checkout latency" in html
    assert "Live incidents" in html
    assert smtp.received == []
    assert not (tmp_path / "ledger.db").exists()


def test_preview_prints_the_text_part(org: SandboxControl, tmp_path: Path) -> None:
    """Without --out the plain-text part goes to stdout."""
    result = invoke(
        "digest", "preview", "daily", "--config", str(write_config(tmp_path, org.base_url, 1))
    )
    assert result.exit_code == 0, result.output
    assert "LIVE INCIDENTS" in result.stdout
    assert "Checkout latency" in result.stdout


def test_unknown_digest_lists_the_known_ones(org: SandboxControl, tmp_path: Path) -> None:
    """A typo in NAME is a config error naming what exists."""
    result = invoke(
        "digest", "preview", "weekly", "--config", str(write_config(tmp_path, org.base_url, 1))
    )
    assert isinstance(result.exception, ConfigError)
    assert "no digest named 'weekly'; digests: daily" in str(result.exception)


def test_send_to_one_address_then_to_everyone(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """--to: only that address, not recorded; without it: recorded as its own period, sent."""
    path = str(write_config(tmp_path, org.base_url, smtp.port))
    result = invoke("digest", "send", "daily", "--to", "me@example.com", "--config", path)
    assert result.exit_code == 0, result.output
    assert "sent to me@example.com" in result.stdout
    with Ledger(tmp_path / "ledger.db") as ledger:
        assert ledger.outbox.periods("daily") == []

    result = invoke("digest", "send", "daily", "--config", path)
    assert result.exit_code == 0, result.output
    assert "sent" in result.stdout
    first, second = smtp.received
    assert first.rcpt_tos == ["me@example.com"]
    assert len(second.rcpt_tos) == 3
    with Ledger(tmp_path / "ledger.db") as ledger:
        [(_, state)] = ledger.outbox.periods("daily")
        assert state == OutboxState.SENT

    bad = invoke(
        "digest", "send", "daily", "--to", "me@example.com\r\nBcc: x@y.z", "--config", path
    )
    assert isinstance(bad.exception, ConfigError)
    assert "--to:" in str(bad.exception)


def test_once_sends_a_due_digest_once(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """`once` (the cron-job mode) sends the digest due within its grace; a second run does not."""
    due = datetime.now(UTC) - timedelta(minutes=10)
    path = write_config(
        tmp_path,
        org.base_url,
        smtp.port,
        cron=f"{due.minute} {due.hour} * * *",
        timezone="UTC",
        extra='catch_up_grace = "1h"',
    )
    # `once` has run from cron since yesterday: the occurrence 10 minutes ago is a real one
    # (on a new ledger it would be a first start's, and not sent).
    in_use_since(tmp_path / "ledger.db", "daily", due - timedelta(days=1))
    for _ in range(2):
        result = invoke("once", "--config", str(path))
        assert result.exit_code == 0, result.output
    [got] = smtp.received
    assert "Checkout latency" in got.raw.decode()
