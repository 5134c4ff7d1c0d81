"""`automations history` shows deliveries: under each event its notifications, and
`history --notifications` lists them alone."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from automations.cli import cli
from automations.errors import ConfigError
from automations.ledger import Ledger
from tests.notify_support import PRIVATE_OK, PUBLIC, T0, Clock, RecordingSender, apply, outbox

pytestmark = pytest.mark.usefixtures("restore_logging")

POLICIES = {"ops-hook": PUBLIC, "leadership": PRIVATE_OK, "pager": PUBLIC}
FIRST = "escalate-minor/01INCIDENT0001/step-0"
SECOND = "escalate-minor/01INCIDENT0002/step-0"
REASON = "live for 2h 5m (over 2h): Minor -> Major"


def history(config: Path, *args: str) -> Result:
    """The real command in-process; history reads only the ledger."""
    return CliRunner().invoke(cli, ["history", "--config", str(config), *args])


@pytest.fixture
def delivered(tmp_path: Path) -> Path:
    """The config of a ledger with two applied events: one sent to ops-hook and refused by
    leadership, one whose pager notification failed once and waits for its retry."""
    config = tmp_path / "automations.toml"
    config.write_text(f'[store]\npath = "{tmp_path / "ledger.db"}"\n')
    with Ledger(tmp_path / "ledger.db") as ledger:
        apply(ledger, FIRST, ["ops-hook", "leadership"], POLICIES)
        apply(ledger, SECOND, ["pager"], POLICIES, number=2, now=T0 + timedelta(minutes=1))
        senders = {
            "ops-hook": RecordingSender(),
            "leadership": RecordingSender(reject=True),
            "pager": RecordingSender(fail=1),
        }
        outbox(ledger, senders, POLICIES, Clock(T0 + timedelta(minutes=1))).deliver_due()
    return config


def test_each_event_lists_its_deliveries(delivered: Path) -> None:
    """Under each event: channel, state, attempts, when sent or next tried, the last error."""
    result = history(delivered)

    assert result.exit_code == 0, result.output
    indent = " " * 32
    assert result.output.splitlines() == [
        f"2026-11-23T09:01:00Z applied    INC-2 'Checkout latency 2'  [escalate-minor] {REASON}",
        f"{indent}notify pager: queued, 1 attempt, next try 2026-11-23T09:01:30Z; last error: "
        "receiver unavailable: HTTP 503 (call 1)",
        f"2026-11-23T09:00:00Z applied    INC-1 'Checkout latency 1'  [escalate-minor] {REASON}",
        f"{indent}notify ops-hook: sent, 1 attempt, sent 2026-11-23T09:01:00Z",
        f"{indent}notify leadership: failed, 1 attempt; last error: refused: receiver "
        "refused: HTTP 410 Gone",
    ]


def test_json_events_carry_their_notifications(delivered: Path) -> None:
    """--json: each event has a "notifications" list with states and ISO 8601 times."""
    rows = json.loads(history(delivered, "--json").output)

    by_key = {row["event_key"]: row["notifications"] for row in rows}
    assert [(n["channel"], n["state"], n["sent_at"]) for n in by_key[FIRST]] == [
        ("ops-hook", "sent", "2026-11-23T09:01:00Z"),
        ("leadership", "failed", None),
    ]
    [pager] = by_key[SECOND]
    assert pager["type"] == "action.applied"
    assert pager["next_attempt_at"] == "2026-11-23T09:01:30Z"


def test_notifications_alone_newest_first_filtered(delivered: Path) -> None:
    """--notifications lists deliveries alone; --channel and --state narrow them."""
    everything = history(delivered, "--notifications")
    failed = history(delivered, "--notifications", "--state", "failed", "--json")
    pager = history(delivered, "--notifications", "--channel", "pager", "--json")
    of_first = history(delivered, "--notifications", "--incident", "INC-1", "--json")
    none = history(delivered, "--notifications", "--state", "expired")

    assert everything.output.splitlines() == [
        f"2026-11-23T09:01:00Z queued      pager  {SECOND}  (1 attempt, next try "
        "2026-11-23T09:01:30Z)",
        " " * 33 + "last error: receiver unavailable: HTTP 503 (call 1)",
        f"2026-11-23T09:00:00Z failed      leadership  {FIRST}  (1 attempt)",
        " " * 33 + "last error: refused: receiver refused: HTTP 410 Gone",
        f"2026-11-23T09:00:00Z sent        ops-hook  {FIRST}  (1 attempt, sent "
        "2026-11-23T09:01:00Z)",
    ]
    assert [n["channel"] for n in json.loads(failed.output)] == ["leadership"]
    assert [n["event_key"] for n in json.loads(pager.output)] == [SECOND]
    assert {n["channel"] for n in json.loads(of_first.output)} == {"ops-hook", "leadership"}
    assert none.output == "no notifications\n"


def test_an_unknown_notification_state_lists_the_allowed_ones(delivered: Path) -> None:
    """--state with --notifications takes a delivery's states, and says which."""
    result = history(delivered, "--notifications", "--state", "applied")

    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == (
        "--state: 'applied' is not a notification state; allowed: queued, sending, sent, "
        "failed, expired, held, summarised, quarantined"
    )


def test_channel_needs_notifications(delivered: Path) -> None:
    """--channel filters deliveries: alone it is a usage error, not silently ignored."""
    result = history(delivered, "--channel", "pager")

    assert result.exit_code == 2
    assert "--channel goes with --notifications" in result.output
