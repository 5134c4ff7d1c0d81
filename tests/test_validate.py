"""The whole file checked once, before anything acts: every name, the templates, the SMTP password.

Through the real CLI against the sandbox, as a user runs `validate`, `once` and `run`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from automations.errors import ConfigError
from automations.settings import Environment
from tests.engine_harness import Harness
from tests.test_engine_sandbox import ESCALATE

H = timedelta(hours=1)
# Not in tests/secret_values.SECRETS: the leak scan would find it in the file that holds it.
FILE_PASSWORD = "pw-in-a-file-7Hq2"
SMTP = """
[smtp]
host = "127.0.0.1"
port = 8025
security = "none"
sender = "Incident Bot <incidents@example.com>"
"""
DIGEST = """
[[digests]]
name = "daily"
cron = "0 8 * * mon-fri"
timezone = "Europe/London"
to = ["oncall@example.com"]
"""
MANY_UNKNOWN = (
    ESCALATE.replace('where = { status_category = ["live"] }', 'where = { severity = ["Tiny"] }')
    .replace('to = "Major"', 'to = "Sev 1"')
    .replace('to = "Critical"', 'to = "Sev 0"')
    + """
[[rules]]
name = "close"
type = "sync_status"
every = "15m"
enabled = false
where = { status_category = ["learning"], custom_field = { Team = ["Payment"] } }
to_status = "Shut"
require = { role = { Lead = "assigned" } }
"""
    + SMTP
    + DIGEST
    + 'where = { severity = ["Sev0"], incident_type = ["Outage"] }\n'
)


def test_validate_lists_every_unknown_name_in_one_run(harness: Harness) -> None:
    """Eight unknown names in two rules (one disabled) and a digest: all reported at once."""
    harness.write(MANY_UNKNOWN)

    result = harness.cli("validate")

    assert result.returncode == 78, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: {harness.config_path}: 8 problems:", result.stderr
    assert result.stderr.count(str(harness.config_path)) == 1  # the file, named once
    severities = "valid: Critical, Major, Minor"
    expected = [
        f"rules[0].steps[0].to: 'Sev 1' is not a known severity; {severities}",
        f"rules[0].steps[1].to: 'Sev 0' is not a known severity; {severities}",
        f"rules[0].where.severity[0]: 'Tiny' is not a known severity; {severities}",
        "rules[1].where.custom_field.Team[0]: 'Payment' is not a known option of 'Team'; valid:",
        "rules[1].to_status: 'Shut' is not a known incident status; valid:",
        "rules[1].require.role: 'Lead' is not a known incident role; valid:",
        f"digests[0].where.severity[0]: 'Sev0' is not a known severity; {severities}",
        "digests[0].where.incident_type[0]: 'Outage' is not a known incident type; valid:",
    ]
    for problem in expected:
        assert any(line.startswith(f"  {problem}") for line in lines[1:]), (problem, lines)
    assert "Traceback" not in result.stderr


def test_a_disabled_rule_does_not_run_but_its_names_are_checked(harness: Harness) -> None:
    """`enabled = false` keeps a rule from acting, not from being checked by validate."""
    harness.write(ESCALATE + "enabled = false\n" + 'since = "Impact begun"\n')

    result = harness.cli("validate")

    assert result.returncode == 78
    assert "rules[0].since: 'Impact begun' is not a known incident timestamp" in result.stderr


def test_once_refuses_a_bad_digest_before_any_rule_acts(harness: Harness) -> None:
    """A rule that would edit and a digest with an unknown name: exit 78, and no edit POSTed."""
    harness.write(ESCALATE + SMTP + DIGEST + 'where = { severity = ["Sev0"] }\n')
    harness.add("Stuck for hours", age=3 * H)

    result = harness.cli("once")

    assert result.returncode == 78, result.stderr
    assert "digests[0].where.severity[0]: 'Sev0' is not a known severity" in result.stderr
    assert harness.posts() == []
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("digest", "expected"),
    [
        ('template = "weekly"\n', "digests[0].template: template 'weekly.html.j2' not found"),
        ('templates_dir = "nowhere"\n', "digests[0].templates_dir: "),
    ],
)
def test_run_refuses_a_bad_template_before_any_rule_acts(
    harness: Harness, digest: str, expected: str
) -> None:
    """The daemon checks digest templates at start-up: exit 78 before its first cycle."""
    harness.write(ESCALATE + SMTP + DIGEST + digest)
    harness.add("Stuck for hours", age=3 * H)

    result = harness.cli("run", timeout=30)

    assert result.returncode == 78, result.stderr
    assert expected in result.stderr
    assert harness.posts() == []


def test_offline_validate_checks_templates(harness: Harness) -> None:
    """`validate --offline` needs no API, but still finds a template that does not exist."""
    harness.write(ESCALATE + SMTP + DIGEST + 'template = "weekly"\n')

    result = harness.cli("validate", "--offline")

    assert result.returncode == 78
    assert "digests[0].template: template 'weekly.html.j2' not found" in result.stderr


def test_validate_and_once_need_the_smtp_password_when_a_login_is_set(harness: Harness) -> None:
    """smtp.username without a password: validate and once exit 78 naming both variables."""
    harness.write(ESCALATE + SMTP.replace("[smtp]", '[smtp]\nusername = "incident-bot"') + DIGEST)
    harness.add("Stuck for hours", age=3 * H)

    validated = harness.cli("validate")
    once = harness.cli("once")

    for result in (validated, once):
        assert result.returncode == 78, result.stderr
        assert (
            "smtp.username: 'incident-bot' logs in, so its password must be in "
            "AUTOMATIONS_SMTP_PASSWORD or in a file named by AUTOMATIONS_SMTP_PASSWORD_FILE"
        ) in result.stderr
    assert harness.posts() == []


def test_the_smtp_password_may_come_from_a_file(harness: Harness, tmp_path: Path) -> None:
    """AUTOMATIONS_SMTP_PASSWORD_FILE satisfies validate; the password is never printed."""
    harness.write(ESCALATE + SMTP.replace("[smtp]", '[smtp]\nusername = "incident-bot"') + DIGEST)
    secret = tmp_path / "smtp-password"
    secret.write_text(FILE_PASSWORD + "\n")

    result = harness.cli("validate", AUTOMATIONS_SMTP_PASSWORD_FILE=str(secret))

    assert result.returncode == 0, result.stderr
    assert "ok (1 rules; names resolved against the API)" in result.stdout
    assert FILE_PASSWORD not in result.stdout + result.stderr


def test_smtp_password_file_errors_are_clear(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The variable wins over the file; an unreadable or empty file is an error naming it."""
    monkeypatch.delenv("AUTOMATIONS_SMTP_PASSWORD", raising=False)
    monkeypatch.delenv("AUTOMATIONS_SMTP_PASSWORD_FILE", raising=False)
    assert Environment().smtp_password() is None
    monkeypatch.setenv("AUTOMATIONS_SMTP_PASSWORD_FILE", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="AUTOMATIONS_SMTP_PASSWORD_FILE: cannot read"):
        Environment().smtp_password()
    (tmp_path / "empty").write_text("\n")
    monkeypatch.setenv("AUTOMATIONS_SMTP_PASSWORD_FILE", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match=r"AUTOMATIONS_SMTP_PASSWORD_FILE: .* is empty"):
        Environment().smtp_password()
    (tmp_path / "password").write_text(FILE_PASSWORD + "\n")
    monkeypatch.setenv("AUTOMATIONS_SMTP_PASSWORD_FILE", str(tmp_path / "password"))
    password = Environment().smtp_password()
    assert password is not None
    assert password.get_secret_value() == FILE_PASSWORD
    monkeypatch.setenv("AUTOMATIONS_SMTP_PASSWORD", "from-the-variable")
    password = Environment().smtp_password()
    assert password is not None
    assert password.get_secret_value() == "from-the-variable"


def test_relative_paths_are_taken_from_the_config_files_folder(
    harness: Harness, tmp_path: Path
) -> None:
    """cron (cwd /), systemd and a shell elsewhere share one ledger and one templates_dir."""
    folder = tmp_path / "etc" / "automations"
    (folder / "templates").mkdir(parents=True)
    (folder / "templates" / "digest.txt.j2").write_text("Team digest: {{ digest.name }}\n")
    config = folder / "automations.toml"
    config.write_text(
        harness.incident_io()
        + '[store]\npath = "ledger.db"\n'
        + ESCALATE
        + SMTP
        + DIGEST
        + 'templates_dir = "templates"\nenabled = false\n'  # never due: the test is time-proof
    )
    stuck = harness.add("Stuck for hours", age=3 * H)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def cli(*args: str, cwd: Path, config_arg: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "automations", *args, "--config", config_arg]
        result = subprocess.run(
            command, cwd=cwd, env=harness.env(), capture_output=True, text=True, timeout=60
        )
        harness.outputs += [result.stdout, result.stderr]
        return result

    once = cli("once", cwd=elsewhere, config_arg=str(config))
    relative = os.path.relpath(config, tmp_path)
    history = cli("history", cwd=tmp_path, config_arg=relative)
    preview = cli("digest", "preview", "daily", cwd=Path("/"), config_arg=str(config))

    assert once.returncode == 0, once.stderr
    assert (folder / "ledger.db").exists()
    assert not (elsewhere / "ledger.db").exists()
    assert not (tmp_path / "ledger.db").exists()
    assert history.returncode == 0, history.stderr
    assert stuck["reference"] in history.stdout  # the same ledger, read from another folder
    assert preview.returncode == 0, preview.stderr
    assert preview.stdout.startswith("Team digest: daily")  # the config folder's template


def test_paths_in_the_file_are_anchored_by_load_config(tmp_path: Path) -> None:
    """An absolute path stays as written; relative ones join the config's folder."""
    from automations.config import load_config

    path = tmp_path / "conf" / "automations.toml"
    path.parent.mkdir()
    path.write_text(
        '[store]\npath = "/var/lib/automations/automations.db"\n' + SMTP + DIGEST
        + 'templates_dir = "../shared/templates"\n'
    )  # fmt: skip
    config = load_config(path)
    assert config.store.path == Path("/var/lib/automations/automations.db")
    assert config.digests[0].templates_dir == path.parent / "../shared/templates"
    path.write_text("")
    assert load_config(path).store.path == path.parent / "automations.db"  # the default too
