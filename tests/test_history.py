"""`automations history`: filter by state, reject an unknown rule, show names and ISO 8601 times."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner, Result
from sqlite_utils import Database

from automations.cli import cli
from automations.errors import ConfigError
from automations.ledger import Ledger
from tests.engine_harness import Harness
from tests.test_engine_sandbox import ESCALATE

H = timedelta(hours=1)
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

pytestmark = pytest.mark.usefixtures("restore_logging")


def history(harness: Harness, *args: str) -> Result:
    """The real command in-process (faster than a subprocess; history reads only the ledger)."""
    return CliRunner().invoke(cli, ["history", "--config", str(harness.config_path), *args])


@pytest.fixture
def ledger_with_outcomes(harness: Harness) -> Harness:
    """One applied and one failed (edit refused) event, from real cycles."""
    harness.write(ESCALATE)
    harness.add("Checkout latency", age=3 * H)
    refused = harness.add("Payments down", age=3 * H)
    harness.sandbox.set_faults(
        paths=[f"/v2/incidents/{refused['id']}/actions/edit"], error_rate=1.0, error_status=422
    )
    harness.cycle()
    harness.sandbox.clear_faults()
    return harness


def test_state_filters_events(ledger_with_outcomes: Harness) -> None:
    """--state failed shows only failed events; repeated --state shows both."""
    failed = history(ledger_with_outcomes, "--state", "failed", "--json")
    both = history(ledger_with_outcomes, "--state", "failed", "--state", "applied", "--json")
    skipped = history(ledger_with_outcomes, "--state", "skipped")

    assert [r["incident_name"] for r in json.loads(failed.output)] == ["Payments down"]
    assert sorted(r["state"] for r in json.loads(both.output)) == ["applied", "failed"]
    assert skipped.output == "no events\n"


def test_an_unknown_state_lists_the_allowed_ones(ledger_with_outcomes: Harness) -> None:
    """--state done is a ConfigError that lists every state."""
    result = history(ledger_with_outcomes, "--state", "done")

    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == (
        "--state: 'done' is not a state; allowed: planned, applied, skipped, failed, "
        "reconciled, rearmed, quarantined"
    )


def test_an_unknown_rule_is_rejected_with_the_rule_names(ledger_with_outcomes: Harness) -> None:
    """--rule must be in the config or the ledger; the error names the file and the rules."""
    unknown = history(ledger_with_outcomes, "--rule", "escalate-minr")
    ledger_with_outcomes.write(ESCALATE.replace("escalate-minor", "renamed"))
    former = history(ledger_with_outcomes, "--rule", "escalate-minor", "--json")
    still_unknown = history(ledger_with_outcomes, "--rule", "nope")

    assert isinstance(unknown.exception, ConfigError)
    assert str(unknown.exception) == (
        f"{ledger_with_outcomes.config_path}: --rule: no rule named 'escalate-minr'; "
        "rules: escalate-minor"
    )
    assert former.exit_code == 0, former.output
    assert len(json.loads(former.output)) == 2  # a rule since removed is still in the ledger
    assert isinstance(still_unknown.exception, ConfigError)
    assert "rules: renamed; in the ledger only: escalate-minor" in str(still_unknown.exception)


def test_text_shows_names_and_iso_times(ledger_with_outcomes: Harness) -> None:
    """Each line starts with an ISO 8601 UTC time, then state, reference and the quoted name."""
    result = history(ledger_with_outcomes)

    lines = [line for line in result.output.splitlines() if not line.startswith(" ")]
    assert len(lines) == 2
    for line in lines:
        assert ISO.match(line.split(" ")[0]), line
    text = result.output
    assert re.search(r"Z failed +INC-\d+ 'Payments down'  \[escalate-minor\] \w", text)
    assert re.search(r"Z applied +INC-\d+ 'Checkout latency'  \[escalate-minor\]", text)
    assert re.search(r"\n {32}error: POST /v2/incidents/\{id\}/actions/edit failed: HTTP 422", text)


def test_json_times_are_iso_8601_utc(ledger_with_outcomes: Harness) -> None:
    """claimed_at and finished_at in --json are 2026-11-24T12:00:00Z, not Python's str()."""
    rows = json.loads(history(ledger_with_outcomes, "--json").output)

    now = ledger_with_outcomes.sandbox.now()
    for row in rows:
        assert ISO.match(row["claimed_at"]), row["claimed_at"]
        assert ISO.match(row["finished_at"]), row["finished_at"]
        for moment in (row["claimed_at"], row["finished_at"]):
            off = abs(datetime.fromisoformat(moment) - now)
            assert off < timedelta(minutes=1), f"{moment}: the API's time, not the host's"


def test_rows_from_before_names_show_the_reference_only(harness: Harness) -> None:
    """An event written before incident names were recorded reads without one."""
    harness.write(ESCALATE)
    stuck = harness.add("Stuck", age=3 * H)
    harness.cycle()
    with Database(harness.ledger_path) as db:
        db.execute("UPDATE events SET incident_name = NULL")
    with Ledger(harness.ledger_path) as ledger:
        (event,) = ledger.events.history()

    text = history(harness).output
    (row,) = json.loads(history(harness, "--json").output)

    assert event.incident_name is None
    assert f"{stuck['reference']}  [escalate-minor]" in text
    assert "'Stuck'" not in text
    assert row["incident_name"] is None
