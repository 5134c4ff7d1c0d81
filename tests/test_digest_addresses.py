"""Addresses and the SMTP login: refused at start-up when the send would crash or leak.

An address holds one mailbox on one line of printable text, and it means the
same in the header as in the envelope; a password never crosses the network in
clear text unless the operator says so.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from automations.cli import cli
from automations.config import load_config
from automations.errors import ConfigError
from tests.digest_support import SMTPServer, write_config
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
to = ["oncall@example.com", {second}]
"""

# (the second `to` entry as TOML, what the error says after "digests[0].to[1]: ")
BAD_ADDRESSES = [
    (r'"a@example.com\u2028b@example.com"', "contains a line break (U+2028)"),
    (r'"a@example.com\u2029"', "contains a line break (U+2029)"),
    (r'"a@example.com\u0085"', "contains a line break (U+0085)"),
    (r'"a@example.com\u000b"', "contains a line break (U+000B)"),
    (r'"a@example.com\tb"', "contains a control character (U+0009)"),
    (r'"a@example.com\u0000"', "contains a control character (U+0000)"),
    (r'"\u202eTeam <a@example.com>"', "contains a control character (U+202E)"),
    (r'"\ufeffa@example.com"', "contains a control character (U+FEFF)"),
    (
        '"a@example.com, b@example.com"',
        "holds 2 addresses (a@example.com, b@example.com); list each as its own entry",
    ),
    ('"a@example.com; b@example.com"', "holds 2 addresses (a@example.com, b@example.com)"),
    ('"a@example.com <b@example.com>"', "holds 2 addresses (a@example.com, b@example.com)"),
    ('"Ops <a@example.com> b@example.com"', "holds 2 addresses (a@example.com, b@example.com)"),
    ('"Ops (a@example.com) <b@example.com"', "is not an email address like oncall@example.com"),
    ('"jos\u00e9@example.com"', "the address itself must be ASCII"),
]


@pytest.mark.parametrize(("second", "expected"), BAD_ADDRESSES)
def test_bad_addresses_are_refused_with_their_key_path(
    tmp_path: Path, second: str, expected: str
) -> None:
    """Separators, control characters and two-in-one addresses fail at load, naming to[1]."""
    path = tmp_path / "automations.toml"
    path.write_text(SMTP + DIGEST.format(second=second))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}: digests[0].to[1]: " in str(info.value), str(info.value)
    assert expected in str(info.value), str(info.value)


@pytest.mark.parametrize("key", ["cc", "bcc"])
def test_cc_bcc_and_sender_are_checked_the_same_way(tmp_path: Path, key: str) -> None:
    """cc, bcc and smtp.sender get the same checks as to."""
    path = tmp_path / "automations.toml"
    body = SMTP + DIGEST.format(second='"b@example.com"') + f'{key} = ["x@example.com\\u2028"]\n'
    path.write_text(body)
    with pytest.raises(ConfigError, match=rf"digests\[0\]\.{key}\[0\]: .*U\+2028"):
        load_config(path)
    path.write_text(
        SMTP.replace("<incidents@example.com>", "<incidents@example.com>, x@example.com")
        + DIGEST.format(second='"b@example.com"')
    )
    with pytest.raises(ConfigError, match=r"smtp\.sender: .*holds 2 addresses"):
        load_config(path)


@pytest.mark.parametrize(
    "second",
    [
        '"\\"Doe, Jane\\" <jane@example.com>"',
        '"Jos\u00e9 Garc\u00eda <jose@example.com>"',
        '"Support Team <support+digest@example.co.uk>"',
    ],
)
def test_good_addresses_still_pass(tmp_path: Path, second: str) -> None:
    """A quoted comma in a display name, a non-ASCII display name, plus addressing: fine."""
    path = tmp_path / "automations.toml"
    path.write_text(SMTP + DIGEST.format(second=second))
    [digest] = load_config(path).digests
    assert len(digest.recipients) == 2


@pytest.mark.parametrize(
    "to",
    ["a@example.com, b@example.com", "me@example.com\u2028", "me@example.com\u0085"],
)
def test_send_to_refuses_the_same_addresses(
    sandbox: SandboxControl, smtp: SMTPServer, tmp_path: Path, to: str
) -> None:
    """`digest send --to` checks its address as the config does, and sends nothing."""
    sandbox.reset(incidents=0)
    path = write_config(tmp_path, sandbox.base_url, smtp.port)
    result = CliRunner().invoke(
        cli,
        ["digest", "send", "daily", "--to", to, "--config", str(path)],
        env={"INCIDENT_IO_API_KEY": SANDBOX_KEY},
    )
    assert isinstance(result.exception, ConfigError), result.output
    assert str(result.exception).startswith("--to: ")
    assert smtp.received == []


# -- the password over an unencrypted connection ---------------------------------------------

LOGIN = '[smtp]\nusername = "incident-bot"\nsecurity = "none"\n'


def test_cleartext_login_to_a_remote_host_is_refused(tmp_path: Path) -> None:
    """security = "none" with a username sends the password in clear: refused, saying how."""
    path = tmp_path / "automations.toml"
    path.write_text(SMTP.replace("[smtp]\n", LOGIN) + DIGEST.format(second='"b@example.com"'))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"{path}: smtp: " in message
    assert "in clear text to smtp.example.com" in message
    assert 'security = "starttls"' in message
    assert "allow_plaintext_auth = true" in message


@pytest.mark.parametrize(
    ("host", "extra"),
    [
        ("smtp.example.com", "allow_plaintext_auth = true\n"),
        ("127.0.0.1", ""),
        ("127.0.0.53", ""),
        ("localhost", ""),
        ("::1", ""),
    ],
)
def test_cleartext_login_is_allowed_on_loopback_or_when_asked(
    tmp_path: Path, host: str, extra: str
) -> None:
    """Loopback never leaves the machine; elsewhere allow_plaintext_auth = true opts in."""
    path = tmp_path / "automations.toml"
    smtp = SMTP.replace("[smtp]\n", LOGIN + extra).replace("smtp.example.com", host)
    path.write_text(smtp + DIGEST.format(second='"b@example.com"'))
    config = load_config(path)
    assert config.smtp is not None
    assert config.smtp.username == "incident-bot"


def test_no_login_needs_no_encryption(tmp_path: Path) -> None:
    """security = "none" without a username (a relay on the LAN) is still accepted."""
    path = tmp_path / "automations.toml"
    smtp = SMTP.replace("[smtp]\n", '[smtp]\nsecurity = "none"\n')
    path.write_text(smtp + DIGEST.format(second='"b@example.com"'))
    assert load_config(path).smtp is not None
