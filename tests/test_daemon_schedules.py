"""The real daemon runs every schedule form the README documents, each at its time.

`automations run` starts in a subprocess with config/example.toml (pointed at
the sandbox and a local SMTP server) plus the README's other forms. Its host
clock is moved by libfaketime to a few seconds before the next weekday 08:00
in London, computed from the test's own clock (never a calendar date): that
instant is a boundary of every cron form at once, so one short run shows each
form firing when it should, and the interval rules running at start-up.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import libfaketime
import pytest

from automations.clock import host_now
from automations.digest.schedule import period_key
from automations.ledger import Ledger, OutboxState
from tests.digest_support import SMTPServer
from tests.engine_harness import REPO, Harness
from tests.secret_values import WEBHOOK_SECRET

LONDON = ZoneInfo("Europe/London")
LEAD = timedelta(seconds=8)  # the daemon starts (imports, catalog, reconcile) in about 2 s idle
JITTER = timedelta(seconds=5)  # Daemon's default jitter for rule jobs
EXTRA_FORMS = """
[[rules]]
name = "every-five-minutes"
type = "escalate_severity"
cron = "*/5 * * * *"
timezone = "Europe/London"
steps = [ { after = "2h", to = "Major" } ]

[[rules]]
name = "weekday-mornings"
type = "escalate_severity"
cron = "0 8 * * 1-5"
timezone = "Europe/London"
steps = [ { after = "2h", to = "Major" } ]
"""
CRON_SCHEDULES = [
    "cron */5 * * * * Europe/London",
    "cron */10 * * * * Europe/London",
    "cron 0 8 * * 1-5 Europe/London",
]
INTERVAL_SCHEDULES = ["every 1m", "every 5m", "every 15m"]


def next_weekday_eight_in_london(after: datetime) -> datetime:
    """The first Monday-to-Friday 08:00 London time after ``after``, found day by day."""
    day = after.astimezone(LONDON).date()
    while True:
        candidate = datetime(day.year, day.month, day.day, 8, 0, tzinfo=LONDON)
        if candidate.weekday() < 5 and candidate > after:
            return candidate.astimezone(UTC)
        day += timedelta(days=1)


def example_config(harness: Harness, smtp: SMTPServer) -> str:
    """config/example.toml on the sandbox, the test's ledger and the local SMTP server."""
    text = (REPO / "config" / "example.toml").read_text()
    for pattern, value in [
        (r'(?m)^base_url = "[^"]*"', f'base_url = "{harness.sandbox.base_url}"'),
        (r'(?m)^path = "[^"]*"', f'path = "{harness.ledger_path}"'),
        (r'(?m)^host = "smtp.example.com"', 'host = "127.0.0.1"'),
        (r"(?m)^port = 587", f"port = {smtp.port}"),
        (r'(?m)^security = "starttls"', 'security = "none"'),
        (r"(?m)^username = .*\n", ""),
        # The harness's sandbox runs a day behind, and this daemon's clock is moved up to
        # three days ahead (to the next weekday 08:00): both are on purpose.
        (r'(?m)^max_clock_skew = "[^"]*"', 'max_clock_skew = "30d"'),
    ]:
        text, count = re.subn(pattern, value, text)
        assert count == 1, pattern
    return text + EXTRA_FORMS


def faked_clock(start: datetime) -> dict[str, str]:
    """Environment that starts a child's host clock at ``start`` (UTC), running normally."""
    env = {"FAKETIME": start.astimezone(UTC).strftime("@%Y-%m-%d %H:%M:%S"), "TZ": "UTC"}
    if "libfaketime" not in os.environ.get("LD_PRELOAD", ""):  # `make test-shifted-clock` has it
        _, preload = libfaketime.get_reload_information()
        env.update(preload)
    return env


def log_records(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            record["at"] = datetime.fromisoformat(record["time"])
            records.append(record)
    return records


def cycles(records: list[dict[str, Any]], schedule: str) -> list[datetime]:
    return [r["at"] for r in records if r["message"].startswith(f"cycle {schedule}: ")]


@pytest.mark.timeout(90)
def test_the_daemon_runs_every_documented_schedule_form_on_time(
    harness: Harness, smtp: SMTPServer, tmp_path: Path
) -> None:
    """example.toml and the README's forms: intervals at start-up; crons and digest at 08:00."""
    harness.config_path.write_text(example_config(harness, smtp))
    eight = next_weekday_eight_in_london(host_now() + LEAD + timedelta(seconds=2))
    log = tmp_path / "daemon.log"
    command = [sys.executable, "-m", "automations", "--log-format", "json", "run"]
    with log.open("w") as stderr:
        daemon = subprocess.Popen(
            [*command, "--config", str(harness.config_path)],
            # example.toml's webhook channel needs its signing secret to start
            env=harness.env(
                AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET=WEBHOOK_SECRET, **faked_clock(eight - LEAD)
            ),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + (LEAD + JITTER).total_seconds() + 30
        while time.monotonic() < deadline and daemon.poll() is None:
            records = log_records(log)
            if smtp.received and all(cycles(records, s) for s in CRON_SCHEDULES):
                break
            time.sleep(0.2)
        time.sleep(1)  # a second cycle of any schedule would show here
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    finally:
        daemon.kill()
    output = log.read_text()
    harness.outputs.append(output)
    assert daemon.returncode == 0, output[-3000:]
    assert "Traceback" not in output

    records = log_records(log)
    (started,) = [r["at"] for r in records if r["message"].startswith("daemon started")]
    assert started < eight, "the daemon took longer than LEAD to start: the test proves nothing"
    for schedule in INTERVAL_SCHEDULES:
        first = cycles(records, schedule)
        assert first, f"{schedule} never ran"
        assert first[0] < eight, f"{schedule} did not run at start-up"
    for schedule in CRON_SCHEDULES:
        ran = cycles(records, schedule)
        assert len(ran) == 1, f"{schedule} ran {len(ran)} times: {ran}"
        assert eight <= ran[0] <= eight + JITTER + timedelta(seconds=3), (schedule, ran, eight)
    assert len(smtp.received) == 1
    with Ledger(harness.ledger_path) as ledger:
        assert ledger.outbox.periods("daily") == [(period_key(eight, LONDON), OutboxState.SENT)]
