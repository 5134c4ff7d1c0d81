"""[store] url and AUTOMATIONS_STORE_URL(_FILE): exactly one store, no password in the file,
and a URL's password never shown (validate, errors, logs), through the real CLI."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from automations.config import load_config
from automations.errors import ConfigError
from automations.ledger import EventState, Ledger
from automations.store import config_location, ledger_location
from tests.engine_harness import Harness
from tests.secret_values import DB_PASSWORD
from tests.test_engine_sandbox import ESCALATE

H = timedelta(hours=1)
# Written in a config file on purpose: not in SECRETS (the leak scan would find it in the file).
IN_FILE = "pw-written-in-toml-4Kd"


def with_password(url: str) -> str:
    """``url`` with DB_PASSWORD as its userinfo password (the test server trusts, ignores it)."""
    return url.replace("://automations@", f"://automations:{DB_PASSWORD}@", 1)


def store_table(harness: Harness, body: str) -> Path:
    """The harness's config with ``body`` as its [store] table."""
    path = harness.write(ESCALATE)
    text = path.read_text()
    start = text.index("[store]\n")
    end = text.index("\n\n", start)
    path.write_text(text[:start] + "[store]\n" + body + text[end:])
    return path


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://automations:{IN_FILE}@db.internal/automations",
        f"postgres://automations@db.internal/automations?password={IN_FILE}",
    ],
)
def test_a_password_in_the_file_is_refused_without_showing_it(harness: Harness, url: str) -> None:
    """validate exits 78 naming store.url and where a password goes instead; never the value."""
    store_table(harness, f'url = "{url}"')
    result = harness.cli("validate", "--offline")
    assert result.returncode == 78, result.stderr
    assert "store.url: has a password in it" in result.stderr
    for way in ("AUTOMATIONS_STORE_URL", "AUTOMATIONS_STORE_URL_FILE", "PGPASSWORD", "PGPASSFILE"):
        assert way in result.stderr
    assert IN_FILE not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('url = "mysql://db/automations"', "store.url: must start with postgresql://"),
        (
            'path = "a.db"\nurl = "postgresql://automations@db/automations"',
            "store: set either path (a SQLite file) or url (PostgreSQL), not both",
        ),
    ],
)
def test_a_url_that_is_not_postgres_or_beside_a_path_is_refused(
    harness: Harness, body: str, expected: str
) -> None:
    """One store, and only PostgreSQL by URL: exit 78 with the key and what is allowed."""
    store_table(harness, body)
    result = harness.cli("validate", "--offline")
    assert result.returncode == 78, result.stderr
    assert expected in result.stderr


def test_validate_names_the_ledger_with_the_password_hidden(
    harness: Harness, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The URL from AUTOMATIONS_STORE_URL or from the file AUTOMATIONS_STORE_URL_FILE names:
    validate shows it with *** for the password; without either, the SQLite file."""
    config = store_table(harness, 'retention = "400d"')
    secret_dir = tmp_path_factory.mktemp("secrets")  # outside tmp_path: the leak scan's
    url_file = secret_dir / "store-url"
    url_file.write_text(with_password(postgres_url) + "\n")
    shown = with_password(postgres_url).replace(DB_PASSWORD, "***")

    by_variable = harness.cli(
        "validate", "--offline", AUTOMATIONS_STORE_URL=with_password(postgres_url)
    )
    by_file = harness.cli("validate", "--offline", AUTOMATIONS_STORE_URL_FILE=str(url_file))
    default = harness.cli("validate", "--offline")

    assert by_variable.returncode == 0, by_variable.stderr
    assert f"ledger: {shown}\n" in by_variable.stdout
    assert by_file.returncode == 0, by_file.stderr
    assert f"ledger: {shown}\n" in by_file.stdout
    assert f"ledger: {config.parent / 'automations.db'}\n" in default.stdout


@pytest.mark.parametrize("body", ['path = "ledger.db"', 'url = "postgresql://a@db/other"'])
def test_a_url_in_the_environment_beside_one_in_the_file_is_refused(
    harness: Harness, body: str
) -> None:
    """A store written in the file and another in AUTOMATIONS_STORE_URL: 78, never a guess."""
    store_table(harness, body)
    result = harness.cli("validate", "--offline", AUTOMATIONS_STORE_URL="postgresql://b@db/x")
    assert result.returncode == 78, result.stderr
    assert "AUTOMATIONS_STORE_URL names a PostgreSQL ledger too; use one" in result.stderr


def test_a_variable_that_is_not_a_postgres_url_is_refused(harness: Harness) -> None:
    """AUTOMATIONS_STORE_URL=/var/lib/x.db is a mistake, said as such (78)."""
    store_table(harness, 'retention = "400d"')
    result = harness.cli("validate", "--offline", AUTOMATIONS_STORE_URL="/var/lib/x.db")
    assert result.returncode == 78
    assert "AUTOMATIONS_STORE_URL: must be a URL starting with postgresql://" in result.stderr


def test_ledger_location_follows_the_file_and_the_environment(tmp_path: Path) -> None:
    """The default path beside the config; a URL from the file or from the environment."""
    path = tmp_path / "automations.toml"
    path.write_text("")
    assert config_location(load_config(path), {}) == tmp_path / "automations.db"
    path.write_text('[store]\nurl = "postgresql://bot@db/auto"\n')
    assert config_location(load_config(path), {}) == "postgresql://bot@db/auto"
    path.write_text('[store]\nretention = "60d"\n')
    store = load_config(path).store
    assert ledger_location(store, {"AUTOMATIONS_STORE_URL": "postgres://x@y/z"}) == (
        "postgres://x@y/z"
    )
    with pytest.raises(ConfigError, match="AUTOMATIONS_STORE_URL_FILE: cannot read"):
        ledger_location(store, {"AUTOMATIONS_STORE_URL_FILE": str(tmp_path / "missing")})


def test_once_acts_on_the_postgres_ledger_the_variable_names(
    harness: Harness, postgres_url: str
) -> None:
    """`once` with AUTOMATIONS_STORE_URL (password and all) claims and records in PostgreSQL,
    and leaves no SQLite file behind; a second `once` edits nothing more."""
    config = store_table(harness, 'retention = "400d"')
    stuck = harness.add("Stuck", age=3 * H)
    url = with_password(postgres_url)

    first = harness.cli("once", AUTOMATIONS_STORE_URL=url)
    second = harness.cli("once", AUTOMATIONS_STORE_URL=url)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert len(harness.posts()) == 1
    assert harness.severity(stuck["id"]) == "Major"
    assert not (config.parent / "automations.db").exists()
    with Ledger(postgres_url) as ledger:
        (event,) = ledger.events.history()
    assert event.state is EventState.APPLIED


def test_an_unreachable_postgres_ledger_is_one_line_without_the_password(
    harness: Harness,
) -> None:
    """`once` against a server that is not there: exit 1, the ledger named with ***, no
    traceback, the password nowhere in the output."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store_table(harness, 'retention = "400d"')
    url = f"postgresql://automations:{DB_PASSWORD}@127.0.0.1:{port}/automations"

    result = harness.cli("once", AUTOMATIONS_STORE_URL=url)

    assert result.returncode == 1, result.stderr
    assert f"cannot open ledger postgresql://automations:***@127.0.0.1:{port}/automations" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert DB_PASSWORD not in result.stdout + result.stderr
