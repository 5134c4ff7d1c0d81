"""Hostile inputs: each gives one clear line and exit 78 through the real CLI, never a traceback
and never a command that hangs (a FIFO) or reads without end (a device)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from automations.backoff import Backoff
from automations.cli import cli
from automations.config import load_config
from automations.durations import parse_duration
from automations.ledger import Ledger
from automations.settings import Environment
from tests.secret_values import SANDBOX_KEY

DEAD_API = "http://127.0.0.1:9"  # nothing is asked of it: each case fails before the API
RULE = """
[[rules]]
name = "esc"
type = "escalate_severity"
every = "1m"
steps = [ { after = "2h", to = "Major" } ]
"""
KIB = 1024


@dataclass
class Setup:
    """What one case runs: the command's arguments and extra environment variables."""

    args: list[str]
    env: dict[str, str] = field(default_factory=dict)


def config(tmp: Path, api: str, body: str = RULE, *, name: str = "automations.toml") -> Path:
    path = tmp / name
    path.write_text(f'[incident_io]\nbase_url = "{api}"\n\n[store]\npath = "ledger.db"\n{body}')
    return path


def fifo(tmp: Path, name: str) -> Path:
    path = tmp / name
    os.mkfifo(path)  # nobody ever writes: opening it to read would wait forever
    return path


def rule_with(old: str, new: str) -> Callable[[Path, str], Setup]:
    def setup(tmp: Path, api: str) -> Setup:
        return Setup(
            ["validate", "--offline", "--config", str(config(tmp, api, RULE.replace(old, new)))]
        )

    return setup


def toml_text(text: bytes) -> Callable[[Path, str], Setup]:
    def setup(tmp: Path, api: str) -> Setup:
        path = tmp / "automations.toml"
        path.write_bytes(text)
        return Setup(["validate", "--offline", "--config", str(path)])

    return setup


def key_file(make: Callable[[Path], Path]) -> Callable[[Path, str], Setup]:
    def setup(tmp: Path, api: str) -> Setup:
        return Setup(
            ["plan", "--config", str(config(tmp, api))],
            {"INCIDENT_IO_API_KEY": "", "INCIDENT_IO_API_KEY_FILE": str(make(tmp))},
        )

    return setup


def password_file(make: Callable[[Path], Path]) -> Callable[[Path, str], Setup]:
    """`validate` reads the SMTP password after asking the API (the sandbox) for the names."""

    def setup(tmp: Path, api: str) -> Setup:
        return Setup(
            ["validate", "--config", str(config(tmp, api))],
            {"AUTOMATIONS_SMTP_PASSWORD_FILE": str(make(tmp))},
        )

    return setup


def written(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(data)
        return path

    return make


def history_since(tmp: Path, api: str) -> Setup:
    path = config(tmp, api)
    Ledger(tmp / "ledger.db").close()  # a ledger exists: the overflow came after opening it
    return Setup(["history", "--since", "999999999d", "--config", str(path)])


def incidents_file(make: Callable[[Path], Path], *more: str) -> Callable[[Path, str], Setup]:
    def setup(tmp: Path, api: str) -> Setup:
        path = config(tmp, api)
        incidents = str(make(tmp))
        return Setup(["test-rule", "esc", "--incidents", incidents, *more, "--config", str(path)])

    return setup


def config_path(make: Callable[[Path], Path]) -> Callable[[Path, str], Setup]:
    def setup(tmp: Path, api: str) -> Setup:
        return Setup(["validate", "--offline", "--config", str(make(tmp))])

    return setup


def directory(tmp: Path) -> Path:
    path = tmp / "conf.d"
    path.mkdir()
    return path


DEEP = 5_000
# (case id, set-up, fragment of the one line on stderr); every case exits 78.
CASES: list[tuple[str, Callable[[Path, str], Setup], str]] = [
    (
        "every 99999999999d (timedelta overflow)",
        rule_with('every = "1m"', 'every = "99999999999d"'),
        "rules[0].every: '99999999999d' is longer than 36500d (100 years), the longest allowed",
    ),
    (
        "every 999999999d (overflow when scheduled)",
        rule_with('every = "1m"', 'every = "999999999d"'),
        "rules[0].every: '999999999d' is longer than 36500d (100 years)",
    ),
    (
        "after 1e309h",
        rule_with('after = "2h"', 'after = "1e309h"'),
        "rules[0].steps[0].after: '1e309h' is not a duration like 90s, 15m, 2h, 7d",
    ),
    (
        "after with 5,000 digits",
        rule_with('after = "2h"', f'after = "{"9" * 5000}h"'),
        "rules[0].steps[0].after: '99999999999999999999999999999...' is longer than 36500d",
    ),
    (
        "TOML arrays nested 5,000 deep",
        toml_text(b"a = " + b"[" * DEEP + b"]" * DEEP + b"\n"),
        "not valid TOML: arrays or inline tables nested too deeply",
    ),
    (
        "TOML inline tables nested 5,000 deep",
        toml_text(b"a = " + b"{b = " * DEEP + b"1" + b"}" * DEEP + b"\n"),
        "not valid TOML: arrays or inline tables nested too deeply",
    ),
    (
        "TOML nested 450 deep where a table is expected",
        rule_with("steps = [ {", "steps = [" + "[" * 450 + "]" * 450 + ", {"),
        "rules[0].steps[0]: expected a table, e.g. {{ key = value }}; got [[[[...]]]]",
    ),
    (
        "NUL in the store path",
        toml_text(b'[store]\npath = "ledger\\u0000.db"\n'),
        "store.path: 'ledger\\x00.db' contains a NUL character; a file path cannot",
    ),
    (
        "config not UTF-8",
        toml_text(b"# caf\xe9\n" + RULE.encode()),
        "not UTF-8 text (byte 0xe9 on line 1); save it as UTF-8",
    ),
    ("a directory as --config", config_path(directory), "is a directory, not a file"),
    (
        "a FIFO as --config",
        config_path(lambda tmp: fifo(tmp, "config.toml")),
        "is a named pipe (FIFO), not a regular file",
    ),
    (
        "API key file is a FIFO",
        key_file(lambda tmp: fifo(tmp, "key")),
        "INCIDENT_IO_API_KEY_FILE: {tmp}/key is a named pipe (FIFO), not a regular file",
    ),
    (
        "API key file is a device",
        key_file(lambda _tmp: Path("/dev/zero")),
        "INCIDENT_IO_API_KEY_FILE: /dev/zero is a character device, not a regular file",
    ),
    (
        "API key file not UTF-8",
        key_file(written("key", b"inc_\xff\xfe\n")),
        "INCIDENT_IO_API_KEY_FILE: {tmp}/key is not UTF-8 text",
    ),
    (
        "API key file of 100 KiB",
        key_file(written("key", b"k" * 100 * KIB)),
        "INCIDENT_IO_API_KEY_FILE: {tmp}/key is larger than 64 KiB; "
        "it should hold the secret alone",
    ),
    (
        "SMTP password file is a FIFO",
        password_file(lambda tmp: fifo(tmp, "password")),
        "AUTOMATIONS_SMTP_PASSWORD_FILE: {tmp}/password is a named pipe (FIFO), not a regular",
    ),
    (
        "SMTP password file not UTF-8",
        password_file(written("password", b"\xc3\x28secret\n")),
        "AUTOMATIONS_SMTP_PASSWORD_FILE: {tmp}/password is not UTF-8 text",
    ),
    (
        "history --since 999999999d",
        history_since,
        "--since: '999999999d' is longer than 36500d (100 years), the longest allowed",
    ),
    (
        "test-rule with JSON nested 100,000 deep",
        incidents_file(written("page.json", b"[" * 100_000 + b"]" * 100_000)),
        "{tmp}/page.json: not a readable JSON file: nested too deeply",
    ),
    (
        "test-rule --now past the year 9999 in UTC",
        incidents_file(written("page.json", b"[]"), "--now", "9999-12-31T23:59:59-14:00"),
        "--now: '9999-12-31T23:59:59-14:00' is not an ISO 8601 time like 2026-11-23T08:00:00Z "
        "(from year 1 to 9999 in UTC)",
    ),
    (
        "test-rule --incidents is a FIFO",
        incidents_file(lambda tmp: fifo(tmp, "page.json")),
        "{tmp}/page.json: is a named pipe (FIFO), not a regular file",
    ),
]
NEEDS_API = {"SMTP password file is a FIFO", "SMTP password file not UTF-8"}


def _limit_memory() -> None:
    """A case that regresses to reading /dev/zero must fail, not take the machine with it."""
    resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))


@pytest.mark.parametrize(("setup", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_gives_one_line_and_exit_78(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    setup: Callable[[Path, str], Setup],
    expected: str,
) -> None:
    """The real CLI in a subprocess: exit 78, one line on stderr saying what is allowed."""
    name = request.node.callspec.id
    api = request.getfixturevalue("sandbox").base_url if name in NEEDS_API else DEAD_API
    case = setup(tmp_path, api)
    env = {**os.environ, "INCIDENT_IO_API_KEY": SANDBOX_KEY, **case.env}
    env.pop("AUTOMATIONS_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "automations", *case.args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_memory,
    )
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 78, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert expected.format(tmp=tmp_path) in lines[0], lines[0]


def test_a_byte_order_mark_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A UTF-8 BOM (Windows editors) before the config, the key or the password is skipped."""
    path = tmp_path / "automations.toml"
    path.write_bytes(b"\xef\xbb\xbf" + RULE.encode())
    (tmp_path / "key").write_bytes(b"\xef\xbb\xbfinc_from_file\n")
    (tmp_path / "password").write_bytes(b"\xef\xbb\xbfhunter2\n")
    monkeypatch.delenv("INCIDENT_IO_API_KEY", raising=False)
    monkeypatch.setenv("INCIDENT_IO_API_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("AUTOMATIONS_SMTP_PASSWORD_FILE", str(tmp_path / "password"))

    assert [rule.name for rule in load_config(path).rules] == ["esc"]
    assert Environment().api_key().get_secret_value() == "inc_from_file"
    password = Environment().smtp_password()
    assert password is not None
    assert password.get_secret_value() == "hunter2"


def test_the_longest_duration_is_a_hundred_years() -> None:
    """36500d is accepted, one second more is refused with the limit; 0 is still refused."""
    assert parse_duration("36500d") == timedelta(days=36500)
    assert parse_duration("5214w2d") == timedelta(days=36500)
    with pytest.raises(ValueError, match=r"'36500d1s' is longer than 36500d \(100 years\)"):
        parse_duration("36500d1s")
    with pytest.raises(ValueError, match="is zero"):
        parse_duration("0d")


def test_retry_backoff_of_days_never_overflows() -> None:
    """A day's backoff doubled 30 times is past any date: it stops at the longest wait."""
    backoff = Backoff(timedelta(days=1), timedelta(days=36500))
    assert backoff.after(1) == timedelta(days=1)
    assert backoff.after(3) == timedelta(days=4)
    assert backoff.after(40) == timedelta(days=36500)


@pytest.mark.usefixtures("restore_logging")
def test_history_limit_beyond_sqlite_is_a_usage_error(tmp_path: Path) -> None:
    """--limit larger than SQLite's integers is refused by the option, not by a traceback."""
    path = config(tmp_path, DEAD_API)
    Ledger(tmp_path / "ledger.db").close()
    result = CliRunner().invoke(
        cli, ["history", "--limit", "99999999999999999999", "--config", str(path)]
    )
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--limit'" in result.output
