"""`automations ledger copy`: a SQLite ledger with real rows from a sandbox run moves to
PostgreSQL whole, and the daemon pointed at it acts on nothing again."""

from __future__ import annotations

import base64
import re
from datetime import timedelta

import pytest

from automations.ledger import Ledger
from tests.digest_support import SMTP_TABLE, SMTPServer
from tests.engine_harness import Harness
from tests.http_receiver import Receiver
from tests.ledger_backends import raw, raw_rows
from tests.postgres_server import PostgresServer

H = timedelta(hours=1)
SECRET = "whsec_" + base64.b64encode(b"ledger-copy-test-secret-32-bytes").decode()
RULES = """
[[digests]]
name = "daily"
cron = "0 8 * * mon-fri"
timezone = "Europe/London"
to = ["oncall@example.com"]

[[channels]]
name = "team-mail"
type = "email"
to = ["oncall@example.com"]

[[channels]]
name = "ops-hook"
type = "webhook"
url = "{url}/hooks"

[[rules]]
name = "esc"
type = "escalate_severity"
every = "1m"
where = {{ status_category = ["live"] }}
steps = [ {{ after = "2h", to = "Major" }} ]
notify = ["team-mail", "ops-hook"]
"""


def configure(harness: Harness, smtp: SMTPServer, receiver: Receiver) -> None:
    receiver.verify_with = SECRET
    harness.write(SMTP_TABLE.format(port=smtp.port) + RULES.format(url=receiver.url))


def row_counts(target: str | object) -> dict[str, int]:
    with Ledger(target) as ledger:  # type: ignore[arg-type]
        return {
            table: raw_rows(ledger, f"SELECT count(*) AS n FROM {table}")[0]["n"]
            for table in ledger.tables()
        }


def printed_counts(stdout: str) -> dict[str, int]:
    return {
        table: int(n.replace(",", ""))
        for table, n in re.findall(r"^  (\w+)\s+([\d,]+)$", stdout, re.MULTILINE)
    }


def test_a_copied_ledger_acts_on_nothing_again(
    harness: Harness,
    smtp: SMTPServer,
    receiver: Receiver,
    postgres: PostgresServer,
    postgres_url: str,
) -> None:
    """Two escalations (mailed and posted), a digest, a pause and resume on SQLite; then a human
    undoes both escalations. Copied, the daemon on PostgreSQL edits, mails and posts nothing;
    a daemon on an empty database would have escalated both again."""
    configure(harness, smtp, receiver)
    stuck = [harness.add(f"Stuck {n}", age=3 * H) for n in range(2)]
    assert harness.cli("once", AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET=SECRET).returncode == 0
    assert (
        harness.cli(
            "digest", "send", "daily", AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET=SECRET
        ).returncode
        == 0
    )
    assert harness.cli("pause", "--reason", "before the move").returncode == 0
    assert harness.cli("resume").returncode == 0
    edits, mails, hooks = len(harness.posts()), len(smtp.received), len(receiver.received)
    assert (edits, mails, hooks) == (2, 3, 2)  # two escalations mailed, one digest, two posts
    for incident in stuck:
        harness.sandbox.update_incident(incident["id"], severity="Minor")  # a human undoes it
    before = row_counts(harness.ledger_path)

    copied = harness.cli("ledger", "copy", "--to", postgres_url)

    assert copied.returncode == 0, copied.stderr
    assert printed_counts(copied.stdout) == before
    assert row_counts(postgres_url) == before
    assert {"events", "notifications", "outbox", "runs", "catalog", "meta"} <= {
        table for table, n in before.items() if n
    }
    harness.store_url = postgres_url
    configure(harness, smtp, receiver)
    harness.sandbox.clear_requests()
    for _ in range(2):
        result = harness.cli("once", AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET=SECRET)
        assert result.returncode == 0, result.stderr
    assert harness.posts() == []
    assert [harness.severity(i["id"]) for i in stuck] == ["Minor", "Minor"]
    assert (len(smtp.received), len(receiver.received)) == (mails, hooks)

    harness.store_url = postgres.database()  # the control: a ledger that forgot
    configure(harness, smtp, receiver)
    assert harness.cli("once", AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET=SECRET).returncode == 0
    assert len(harness.posts()) == 2


def test_a_target_that_is_not_empty_is_refused_and_left_alone(
    harness: Harness, postgres_url: str
) -> None:
    """Exit 73 naming the tables with rows; the target keeps exactly what it had."""
    harness.write("")
    with Ledger(harness.ledger_path) as lite:
        lite.catalog.save("severities", [], now=None)
    with Ledger(postgres_url) as target:
        target.kill_switch.pause(by="someone", reason="another ledger", now=harness.sandbox.now())

    result = harness.cli("ledger", "copy", "--to", postgres_url)

    assert result.returncode == 73, result.stderr
    assert "is not empty (meta 1)" in result.stderr
    assert row_counts(postgres_url)["catalog"] == 0
    with Ledger(postgres_url) as target:
        assert target.kill_switch.paused() is not None


def test_a_running_daemon_s_ledger_is_not_copied(harness: Harness, postgres_url: str) -> None:
    """While a daemon holds the SQLite ledger: exit 75, nothing copied."""
    harness.write("")
    with Ledger(harness.ledger_path, lock=True) as held:
        held.catalog.save("severities", [], now=None)
        result = harness.cli("ledger", "copy", "--to", postgres_url)
    assert result.returncode == 75, result.stderr
    assert "is locked by PID" in result.stderr
    assert sum(row_counts(postgres_url).values()) == 0


def test_a_row_the_target_refuses_rolls_the_whole_copy_back(
    harness: Harness, postgres_url: str
) -> None:
    """A NUL in a late table's text (SQLite keeps it, PostgreSQL cannot): exit 1, and the tables
    copied before it are empty again."""
    harness.write("")
    with Ledger(harness.ledger_path) as lite:
        lite.catalog.save("severities", [{"name": "Minor"}], now=None)
        lite.runs.start("cycle", rules=["esc"], now=None)
        raw(lite, "INSERT INTO retention_checks VALUES (?, ?)", ["01INC\x00", "2026-01-01"])

    result = harness.cli("ledger", "copy", "--to", postgres_url)

    assert result.returncode == 1, result.stderr
    assert "copying into ledger" in result.stderr
    assert sum(row_counts(postgres_url).values()) == 0


@pytest.mark.parametrize(
    ("args", "variable", "expected"),
    [
        ((), "", "no target: pass --to postgresql://... or set AUTOMATIONS_STORE_URL"),
        (("--to", "/tmp/other.db"), "", "is not a URL starting with postgresql://"),
        ((), "sqlite:///x", "AUTOMATIONS_STORE_URL: must be a URL"),
        (("--from", "/nonexistent/ledger.db", "--to", "postgresql://a@b/c"), "", "no SQLite"),
    ],
)
def test_configuration_problems_exit_78(
    harness: Harness, args: tuple[str, ...], variable: str, expected: str
) -> None:
    """No target, a target that is not PostgreSQL, no SQLite ledger: 78 with one line."""
    harness.write("")
    Ledger(harness.ledger_path).close()
    result = harness.cli("ledger", "copy", *args, AUTOMATIONS_STORE_URL=variable)
    assert result.returncode == 78, result.stderr
    assert expected in result.stderr


def test_the_target_may_come_from_the_environment(harness: Harness, postgres_url: str) -> None:
    """With AUTOMATIONS_STORE_URL set and [store] path still in the file (the upgrade's middle
    step), copy reads the file's ledger and writes the variable's."""
    harness.write("")
    with Ledger(harness.ledger_path) as lite:
        lite.meta.save_clock_offset(timedelta(seconds=3))
    result = harness.cli("ledger", "copy", AUTOMATIONS_STORE_URL=postgres_url)
    assert result.returncode == 0, result.stderr
    with Ledger(postgres_url) as target:
        assert target.meta.clock_offset() == timedelta(seconds=3)
