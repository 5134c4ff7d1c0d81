"""`automations digest status`: schedule, next send, last sent and every outbox state, from the
config and the ledger only."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from automations.cli import cli
from automations.clock import host_now
from automations.config import load_config
from automations.digest.schedule import Schedule, period_key
from automations.digest.status import digest_statuses
from automations.errors import ConfigError
from automations.history import iso
from automations.ledger import Ledger
from tests.digest_support import Clock, SMTPServer, open_digests, write_config
from tests.sandbox_server import SandboxControl
from tests.secret_values import SANDBOX_KEY

pytestmark = pytest.mark.usefixtures("restore_logging")

WEEKLY = """
[[digests]]
name = "weekly"
enabled = false
cron = "0 9 * * mon"
timezone = "Europe/London"
to = ["oncall@example.com"]
"""
CRASHED = "crashed-host:4242:abcdef"


@dataclass
class Outbox:
    """A ledger holding one daily digest in each state, and where each is."""

    config: Path
    keys: dict[str, str]  # what it stands for -> period


@pytest.fixture
def outbox(sandbox: SandboxControl, smtp: SMTPServer, tmp_path: Path) -> Outbox:
    """Expired, failed, sent, pending, sending (a crashed sender) and one queued a year ahead,
    made by the real outbox against a real SMTP server; days relative to the host's clock."""
    sandbox.reset(incidents=0)
    sandbox.add_incident(name="Checkout latency", status="Investigating", severity="Major")
    path = write_config(
        tmp_path, sandbox.base_url, smtp.port, cron="0 8 * * *", timezone="UTC", more=WEEKLY
    )
    first = host_now().replace(hour=8, minute=0, second=0, microsecond=0) - timedelta(days=10)
    clock = Clock(first)
    runtime, digests = open_digests(path, clock, in_use_for=timedelta(days=30))
    keys: dict[str, str] = {}

    def queue(what: str, period: datetime) -> str:
        clock.now = period + timedelta(seconds=30)
        digests.enqueue("daily", period)
        keys[what] = period_key(period, ZoneInfo("UTC"))
        return keys[what]

    try:
        smtp.handler.reject = lambda _address: "451 4.7.1 Greylisted, try again later"
        digests.outbox.deliver("daily", queue("expired", first))
        clock.now += timedelta(hours=13)  # past expire_after (12h)
        digests.outbox.deliver_due()
        smtp.handler.reject = lambda _address: "550 5.1.1 No such user"
        digests.outbox.deliver("daily", queue("failed", first + timedelta(days=1)))
        smtp.handler.reject = lambda _address: None
        digests.outbox.deliver("daily", queue("sent", first + timedelta(days=2)))
        smtp.handler.reject = lambda _address: "451 4.7.1 Greylisted, try again later"
        digests.outbox.deliver("daily", queue("pending", first + timedelta(days=3)))
        item = runtime.ledger.outbox.find("daily", queue("sending", first + timedelta(days=4)))
        assert item is not None
        runtime.ledger.outbox.claim(
            item.id, owner=CRASHED, now=clock.now, lease_until=clock.now + timedelta(minutes=2)
        )
        queue("future", first + timedelta(days=400))  # the host clock a year ahead, once
    finally:
        runtime.close()
    return Outbox(path, keys)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"INCIDENT_IO_API_KEY": SANDBOX_KEY})


def next_daily(run: Callable[[], Result]) -> tuple[Result, set[datetime]]:
    """Run the command; the next 08:00 UTC as seen just before and just after (a boundary
    crossed while it ran leaves two candidates, never a flaky test)."""
    schedule = Schedule("0 8 * * *", ZoneInfo("UTC"))
    before = schedule.next_after(host_now())
    result = run()
    after = schedule.next_after(host_now())
    assert before is not None
    assert after is not None
    return result, {before, after}


def test_text_lists_schedule_next_send_last_sent_and_each_state(outbox: Outbox) -> None:
    """Text: one line per entry with its state, attempts, error; the future one flagged."""
    result, nexts = next_daily(lambda: invoke("digest", "status", "--config", str(outbox.config)))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    keys = outbox.keys

    assert lines[0] == "daily: enabled; cron '0 8 * * *' in UTC"
    assert lines[1] in {f"  next send: {n.isoformat()} (UTC), {iso(n)} (UTC)" for n in nexts}
    assert lines[2] == f"  last sent: {keys['sent']}"
    assert lines[3] == (
        "  outbox: 6 entries: 3 queued (2 pending, 1 sending), 1 sent, 1 failed, 1 expired"
    )
    entries = {line.split()[0]: line for line in lines[4:10]}
    assert entries[keys["expired"]].split()[1:3] == ["expired", "1"]
    assert "error: SMTP 127.0.0.1" in entries[keys["expired"]]
    assert "451 4.7.1 Greylisted" in entries[keys["expired"]]
    assert entries[keys["failed"]].split()[1:3] == ["failed", "1"]
    assert "550 5.1.1 No such user" in entries[keys["failed"]]
    assert entries[keys["sent"]].split()[1:3] == ["sent", "1"]
    assert entries[keys["pending"]].split()[1:3] == ["pending", "1"]
    assert "next try " in entries[keys["pending"]]
    assert "451 4.7.1 Greylisted" in entries[keys["pending"]]
    assert entries[keys["sending"]].split()[1:3] == ["sending", "1"]
    assert f"by {CRASHED} until " in entries[keys["sending"]]
    assert entries[keys["future"]].split()[1:3] == ["pending", "0"]
    flagged = [key for key, line in entries.items() if "IN THE FUTURE" in line]
    assert flagged == [keys["future"]]

    assert lines[10:] == [
        "",
        "weekly: disabled; cron '0 9 * * mon' in Europe/London",
        "  next send: none (disabled)",
        "  last sent: never",
        "  outbox: 0 entries",
    ]


def test_json_gives_the_same_facts_per_entry(outbox: Outbox) -> None:
    """--json: a list of digests; each entry's state, attempts, error and in_future."""
    result, nexts = next_daily(
        lambda: invoke("digest", "status", "--json", "--config", str(outbox.config))
    )
    assert result.exit_code == 0, result.output
    daily, weekly = json.loads(result.output)
    keys = outbox.keys

    assert daily["name"] == "daily"
    assert (daily["enabled"], daily["cron"], daily["timezone"]) == (True, "0 8 * * *", "UTC")
    assert daily["next_send"] in [{"local": n.isoformat(), "utc": iso(n)} for n in nexts]
    assert daily["last_sent_period"] == keys["sent"]
    assert daily["outbox_total"] == 6
    assert daily["outbox_counts"] == {
        "queued": 3,
        "pending": 2,
        "sending": 1,
        "sent": 1,
        "failed": 1,
        "expired": 1,
        "quarantined": 0,
    }
    assert daily["team_ids"] == []
    rows = {row["period"]: row for row in daily["outbox"]}
    order = ["expired", "failed", "sent", "pending", "sending", "future"]
    assert [row["period"] for row in daily["outbox"]] == [keys[w] for w in order]
    assert [rows[keys[w]]["state"] for w in order] == [
        "expired",
        "failed",
        "sent",
        "pending",
        "sending",
        "pending",
    ]
    assert [rows[keys[w]]["attempts"] for w in order] == [1, 1, 1, 1, 1, 0]
    assert [rows[keys[w]]["in_future"] for w in order] == [False] * 5 + [True]
    assert "550 5.1.1 No such user" in rows[keys["failed"]]["last_error"]
    assert "451 4.7.1" in rows[keys["pending"]]["last_error"]
    assert rows[keys["sent"]]["last_error"] is None
    assert rows[keys["sent"]]["sent_at"] is not None
    assert rows[keys["sending"]]["owner"] == CRASHED
    assert rows[keys["pending"]]["next_attempt_at"] is not None

    assert weekly["enabled"] is False
    assert weekly["next_send"] is None
    assert weekly["outbox"] == []
    assert weekly["outbox_counts"] == dict.fromkeys(daily["outbox_counts"], 0)


def test_one_digest_newest_entries_and_an_unknown_name(outbox: Outbox) -> None:
    """NAME picks one digest, --limit keeps the newest entries, a typo lists the digests."""
    result = invoke("digest", "status", "daily", "--limit", "2", "--config", str(outbox.config))
    assert result.exit_code == 0, result.output
    assert "weekly" not in result.output
    assert (
        "  outbox: 6 entries: 3 queued (2 pending, 1 sending), 1 sent, 1 failed, 1 expired; "
        "the newest 2 shown"
    ) in result.output
    shown = [line.split()[0] for line in result.output.splitlines()[4:]]
    assert shown == [outbox.keys["sending"], outbox.keys["future"]]

    bad = invoke("digest", "status", "dialy", "--config", str(outbox.config))
    assert isinstance(bad.exception, ConfigError)
    assert "no digest named 'dialy'; digests: daily, weekly" in str(bad.exception)


def test_next_send_in_the_digest_zone_and_utc_without_a_ledger(tmp_path: Path) -> None:
    """Before anything ran: London's 08:00 on a summer weekday is 07:00 UTC; Friday -> Monday."""
    path = write_config(tmp_path, "http://127.0.0.1:1", 1, more=WEEKLY)
    config = load_config(path)
    friday_noon = datetime(2026, 7, 3, 11, 0, tzinfo=UTC)

    daily, weekly = digest_statuses(config, None, friday_noon, None, 10)

    assert daily.json()["next_send"] == {
        "local": "2026-07-06T08:00:00+01:00",
        "utc": "2026-07-06T07:00:00Z",
    }
    assert daily.lines()[1] == (
        "  next send: 2026-07-06T08:00:00+01:00 (Europe/London), 2026-07-06T07:00:00Z (UTC)"
    )
    assert daily.last_sent is None
    assert daily.entries == []
    assert weekly.next_send is None
    assert not Path(config.store.path).exists()
    with Ledger(config.store.path) as ledger:  # an empty ledger says the same
        assert digest_statuses(config, ledger, friday_noon, "daily", 10)[0].total == 0


def test_an_unreadable_row_shows_as_quarantined_and_is_counted(outbox: Outbox) -> None:
    """A ledger row whose state no version wrote is quarantined, listed and counted as such;
    the sent period it was no longer counts as the last sent."""
    ledger = sqlite3.connect(outbox.config.parent / "ledger.db")
    with ledger:
        ledger.execute(
            "UPDATE outbox SET state = 'garbled' WHERE digest = 'daily' AND period = ?",
            [outbox.keys["sent"]],
        )
    ledger.close()

    result = invoke("digest", "status", "daily", "--json", "--config", str(outbox.config))
    text = invoke("digest", "status", "daily", "--config", str(outbox.config))

    assert result.exit_code == 0, result.output
    (daily,) = json.loads(result.stdout)
    row = next(row for row in daily["outbox"] if row["period"] == outbox.keys["sent"])
    assert row["state"] == "quarantined"
    assert row["last_error"].startswith("quarantined, the ledger row could not be read")
    assert (daily["outbox_counts"]["sent"], daily["outbox_counts"]["quarantined"]) == (0, 1)
    assert daily["last_sent_period"] is None
    assert text.stdout.splitlines()[3] == (
        "  outbox: 6 entries: 3 queued (2 pending, 1 sending), 1 failed, 1 expired, 1 quarantined"
    )


def test_a_per_team_digest_says_its_teams_are_filtered_locally(tmp_path: Path) -> None:
    """A digest with where.team_ids shows them, and that they are judged after fetching."""
    team = "01HZPAYMENTS0000000000000"
    path = write_config(
        tmp_path, "http://127.0.0.1:1", 1, extra=f'where = {{ team_ids = ["{team}"] }}\n'
    )
    friday_noon = datetime(2026, 7, 3, 11, 0, tzinfo=UTC)

    (daily,) = digest_statuses(load_config(path), None, friday_noon, None, 10)

    assert daily.json()["team_ids"] == [team]
    assert daily.lines()[3:5] == [
        f"  where: team_ids {team} (filtered locally after fetching: GET /v2/incidents has no "
        "team filter)",
        "  outbox: 0 entries",
    ]
