"""Global options before or after the subcommand (the README's cron line as printed), and
`digest send --to` repeated."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from automations.cli import cli
from automations.ledger import Ledger
from tests.digest_support import SMTPServer, write_config
from tests.engine_harness import REPO, Harness
from tests.sandbox_server import SandboxControl
from tests.secret_values import SANDBOX_KEY
from tests.test_engine_sandbox import ESCALATE

H = timedelta(hours=1)


def _json_lines(text: str) -> list[dict[str, Any]]:
    """Every line parsed as JSON: a line that is not JSON fails the test."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _cycles(text: str) -> list[dict[str, Any]]:
    return [line["cycle"] for line in _json_lines(text) if "cycle" in line]


def _automations(*args: str, harness: Harness) -> subprocess.CompletedProcess[str]:
    """The real CLI with exactly these arguments, in this order."""
    result = subprocess.run(
        [sys.executable, "-m", "automations", *args],
        env=harness.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    harness.outputs += [result.stdout, result.stderr]
    return result


def test_the_readme_cron_line_runs_as_printed(
    harness: Harness, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The README's crontab entry, run by sh with only its paths swapped for temporary ones."""
    (block,) = re.findall(r"```cron\n(.*?)\n```", (REPO / "README.md").read_text(), re.DOTALL)
    (entry,) = [line for line in block.splitlines() if line.strip()]
    command = entry.split(None, 5)[5]  # after the five schedule fields
    # The key's file lives outside tmp_path, which the leak check scans after the test.
    key_file = tmp_path_factory.mktemp("secrets") / "key"
    log_file = tmp_path / "automations.log"
    key_file.write_text(SANDBOX_KEY)
    for printed, here in {
        "/etc/automations/key": key_file,
        "/etc/automations/automations.toml": harness.config_path,
        "/var/log/automations.log": log_file,
    }.items():
        assert printed in command, f"the README's cron line no longer uses {printed}"
        command = command.replace(printed, shlex.quote(str(here)))
    assert " automations once " in command
    command = command.replace(" automations ", f" {shlex.quote(sys.executable)} -m automations ", 1)
    harness.write(ESCALATE)
    stuck = harness.add("Stuck", age=3 * H)
    env = harness.env()
    del env["INCIDENT_IO_API_KEY"]  # the line names the key's file

    result = subprocess.run(
        ["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=60
    )

    log = log_file.read_text()
    harness.outputs += [result.stdout, result.stderr, log]
    assert result.returncode == 0, log
    (cycle,) = _cycles(log)
    assert cycle["applied"] == 1
    assert harness.severity(stuck["id"]) == "Major"


def test_global_options_work_before_the_subcommand(harness: Harness) -> None:
    """`automations --config X --log-format json --log-level INFO once`: the other order."""
    harness.write(ESCALATE)
    harness.add("Stuck", age=3 * H)

    result = _automations(
        "--config",
        str(harness.config_path),
        "--log-format",
        "json",
        "--log-level",
        "INFO",
        "once",
        harness=harness,
    )

    assert result.returncode == 0, result.stderr
    (cycle,) = _cycles(result.stderr)
    assert cycle["applied"] == 1


def test_the_value_after_the_subcommand_wins(harness: Harness) -> None:
    """Given in both places, the subcommand's own value is the one used."""
    harness.write(ESCALATE)
    missing = harness.tmp_path / "missing.toml"

    result = _automations(
        "--config",
        str(missing),
        "--log-format",
        "text",
        "--log-level",
        "ERROR",
        "once",
        "--log-level",
        "INFO",
        "--log-format",
        "json",
        "--config",
        str(harness.config_path),
        harness=harness,
    )

    assert result.returncode == 0, result.stderr
    assert len(_cycles(result.stderr)) == 1  # INFO lines, as JSON, from the file given last


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("where", ["before", "after", "environment"])
def test_config_from_either_side_of_the_subcommand(tmp_path: Path, where: str) -> None:
    """--config on either side of the command's name wins over $AUTOMATIONS_CONFIG, which
    is used when --config is absent."""
    path = tmp_path / "mine.toml"
    path.write_text(
        '[[rules]]\nname = "r"\ntype = "escalate_severity"\nevery = "1m"\n'
        'steps = [ { after = "2h", to = "Major" } ]\n'
    )
    args, environment = {
        "before": (["--config", str(path), "validate", "--offline"], tmp_path / "no.toml"),
        "after": (["validate", "--offline", "--config", str(path)], tmp_path / "no.toml"),
        "environment": (["validate", "--offline"], path),
    }[where]

    result = CliRunner().invoke(cli, args, env={"AUTOMATIONS_CONFIG": str(environment)})

    assert result.exit_code == 0, result.output
    assert f"{path}: ok (1 rules; offline)" in result.stdout


@pytest.mark.usefixtures("restore_logging")
def test_digest_send_to_several_addresses_sends_one_message_to_all(
    sandbox: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """`--to a --to b`: one message, both in the envelope and To:, nothing recorded."""
    sandbox.reset(incidents=0)
    sandbox.add_incident(name="Checkout latency", status="Investigating", severity="Critical")
    path = str(write_config(tmp_path, sandbox.base_url, smtp.port))
    args = ["--config", path, "digest", "send", "daily", "--to", "a@example.com"]

    result = CliRunner().invoke(
        cli, [*args, "--to", "b@example.org"], env={"INCIDENT_IO_API_KEY": SANDBOX_KEY}
    )

    assert result.exit_code == 0, result.output
    assert "sent to a@example.com, b@example.org" in result.stdout
    (message,) = smtp.received
    assert message.rcpt_tos == ["a@example.com", "b@example.org"]
    assert message.message["To"] == "a@example.com, b@example.org"
    assert message.message["Cc"] is None
    with Ledger(tmp_path / "ledger.db") as ledger:
        assert ledger.outbox.periods("daily") == []
