"""[smtp] and [[digests]]: each mistake refused with the file, the key path and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from automations.config import load_config
from automations.digest.config import SECTIONS
from automations.errors import ConfigError
from automations.runtime import build_runtime
from tests.sandbox_server import SandboxControl
from tests.secret_values import SANDBOX_KEY

SMTP = """
[smtp]
host = "smtp.example.com"
sender = "Incident Bot <incidents@example.com>"
"""
DIGEST = """
[[digests]]
name = "daily"
cron = "0 8 * * mon-fri"
timezone = "Europe/London"
to = ["oncall@example.com"]
"""

CASES = [
    (
        SMTP + DIGEST.replace('timezone = "Europe/London"\n', ""),
        "digests[0]: cron needs a timezone",
    ),
    (
        SMTP + DIGEST.replace("Europe/London", "Mars/Olympus"),
        "digests[0].timezone: 'Mars/Olympus' is not an IANA timezone",
    ),
    (
        SMTP + DIGEST.replace("0 8 * * mon-fri", "at eight"),
        "digests[0].cron: 'at eight' is not a cron expression like '0 8 * * mon-fri'",
    ),
    (
        SMTP + DIGEST + DIGEST,
        "digests[1].name: 'daily' is already used by digests[0]; names must be unique",
    ),
    (
        SMTP + DIGEST.replace('["oncall@example.com"]', '["oncall@example.com\\r\\nBcc: x@y.z"]'),
        "digests[0].to[0]: 'oncall@example.com\\r\\nBcc: x@y.z' contains a line break",
    ),
    (
        SMTP + DIGEST.replace('["oncall@example.com"]', '["oncall"]'),
        "digests[0].to[0]: 'oncall' is not an email address like oncall@example.com",
    ),
    (
        SMTP + DIGEST.replace('["oncall@example.com"]', "[]"),
        "digests[0].to: needs at least 1 entry; got []",
    ),
    (DIGEST, "smtp: is required when a digest is enabled"),
    (
        SMTP + DIGEST + 'where = { mode = ["test"] }\n',
        "digests[0]: where.mode lists test: set include_test = true to show them",
    ),
    (
        SMTP + DIGEST + "colour = 'red'\n",
        "digests[0].colour: unknown key; allowed: bcc, catch_up_grace, cc, cron, default_window",
    ),
    (
        SMTP.replace('host = "smtp.example.com"', 'host = "smtp.example.com"\nsecurity = "ssl"')
        + DIGEST,
        "smtp.security: 'ssl' is not allowed; choose 'starttls', 'tls' or 'none'",
    ),
    (
        SMTP + DIGEST + 'subject = "{{ digest.name "\n',
        "digests[0].subject: not a valid Jinja template",
    ),
    (SMTP + DIGEST + 'expire_after = "12 hours"\n', "digests[0].expire_after: '12 hours' is not"),
    (
        SMTP + DIGEST + 'sections = ["live", "charts"]\n',
        "digests[0].sections[1]: 'charts' is not allowed",
    ),
    (SMTP.replace("Incident Bot <incidents@example.com>", "nobody") + DIGEST, "smtp.sender:"),
]


@pytest.mark.parametrize(("body", "expected"), CASES)
def test_bad_digest_config(tmp_path: Path, body: str, expected: str) -> None:
    """Each broken file names the key path and what would be accepted."""
    path = tmp_path / "automations.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}: {expected}" in str(info.value), str(info.value)


def test_good_digest_config_has_the_documented_defaults(tmp_path: Path) -> None:
    """A minimal digest: private and test off, every section, the default windows."""
    path = tmp_path / "automations.toml"
    path.write_text(SMTP + DIGEST)
    config = load_config(path)
    [digest] = config.digests
    assert config.smtp is not None
    assert config.smtp.security == "starttls"
    assert config.smtp.port == 587
    assert digest.include_private is False
    assert digest.include_test is False
    assert digest.sections == SECTIONS
    assert str(digest.default_window) == "1 day, 0:00:00"
    assert digest.recipients == ["oncall@example.com"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            'where = { severity = ["Sev0"] }\n',
            "digests[0].where.severity[0]: 'Sev0' is not a known severity; "
            "valid: Critical, Major, Minor",
        ),
        ('template = "weekly"\n', "digests[0].template: template 'weekly.html.j2' not found"),
        ('templates_dir = "nowhere"\n', "digests[0].templates_dir:"),
    ],
)
def test_names_and_templates_resolved_at_start_up(
    sandbox: SandboxControl, tmp_path: Path, extra: str, expected: str
) -> None:
    """Names are checked against the organisation and templates loaded before anything runs."""
    path = tmp_path / "automations.toml"
    path.write_text(
        f'[incident_io]\nbase_url = "{sandbox.base_url}"\n'
        f'[store]\npath = "{tmp_path / "ledger.db"}"\n' + SMTP + DIGEST + extra
    )
    with pytest.raises(ConfigError) as info:
        build_runtime(load_config(path), SecretStr(SANDBOX_KEY), lock=False)
    assert f"{path}: {expected}" in str(info.value), str(info.value)


def test_login_without_a_password_is_refused(
    sandbox: SandboxControl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """smtp.username without AUTOMATIONS_SMTP_PASSWORD fails when the digests are built (at
    start-up), not at 08:00; a restart with it set builds them."""
    monkeypatch.delenv("AUTOMATIONS_SMTP_PASSWORD", raising=False)
    path = tmp_path / "automations.toml"
    path.write_text(
        f'[incident_io]\nbase_url = "{sandbox.base_url}"\n'
        f'[store]\npath = "{tmp_path / "ledger.db"}"\n'
        + SMTP.replace("[smtp]", '[smtp]\nusername = "bot"')
        + DIGEST
    )
    runtime = build_runtime(load_config(path), SecretStr(SANDBOX_KEY), lock=False)
    with runtime, pytest.raises(ConfigError, match="AUTOMATIONS_SMTP_PASSWORD"):
        _ = runtime.digests
    monkeypatch.setenv("AUTOMATIONS_SMTP_PASSWORD", "s3cret")
    with build_runtime(load_config(path), SecretStr(SANDBOX_KEY), lock=False) as runtime:
        digests = runtime.digests
        assert digests is not None
        assert digests.mailer is not None
        assert "s3cret" not in repr(digests.mailer)
