"""Upstream free text is clipped to one bounded line: plan output, logs, reasons, ledger."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from automations.history import event_lines
from automations.ledger import Ledger
from automations.text import ELLIPSIS, NAME_LIMIT, one_line
from tests.engine_harness import Harness
from tests.test_engine_sandbox import ESCALATE

H = timedelta(hours=1)
HUGE = "Database down " + "x" * 1_000_000


def test_one_line_bounds_length_and_marks_the_cut() -> None:
    """Long text is cut to the limit with an ellipsis; short text is unchanged."""
    assert one_line("short") == "short"
    clipped = one_line(HUGE)
    assert len(clipped) == NAME_LIMIT
    assert clipped.startswith("Database down xxx")
    assert clipped.endswith(ELLIPSIS)
    assert one_line("a" * 10, limit=10) == "a" * 10
    assert one_line("a" * 11, limit=10) == "a" * 9 + ELLIPSIS


def test_one_line_keeps_text_on_one_line() -> None:
    """Line breaks (also U+2028, U+0085) and control characters become single spaces."""
    assert one_line("one\nINFO forged line") == "one INFO forged line"
    assert one_line("a\r\n\u2028b\u0085c\x1bd") == "a b c d"
    # A cut in the middle of a run of breaks still shows the ellipsis.
    assert one_line("\n" * 2000, limit=10).endswith(ELLIPSIS)


def test_plan_logs_and_ledger_clip_a_megabyte_incident_name(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A 1 MB name shows as one clipped line in `plan`, in the log and in the ledger."""
    harness.write(ESCALATE)
    harness.add(HUGE + "\nsecond line", age=3 * H)

    plan = harness.cli("plan")
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert len(plan.stdout) < 2000
    assert f"'{one_line(HUGE)}'" in plan.stdout

    with caplog.at_level(logging.INFO):
        (report,) = harness.cycle()
    assert report.applied == 1
    assert max(len(record.getMessage()) for record in caplog.records) < 1000
    assert all("\n" not in record.getMessage() for record in caplog.records)
    with Ledger(harness.ledger_path) as ledger:
        (event,) = ledger.events.history()
    assert event.incident_name == one_line(HUGE)


def test_history_clips_names_of_rows_written_before_clipping(tmp_path: Path) -> None:
    """`history` shows a huge name stored by an older version as one clipped line."""
    with Ledger(tmp_path / "ledger.db") as ledger:
        ledger.events.claim(
            rule="r",
            incident_id="01INC",
            incident_reference="INC-1",
            incident_name=HUGE,
            event_key="r/01INC/x",
            reason="old row",
            request_body=None,
        )
        (event,) = ledger.events.history()
    (line,) = event_lines(event)
    assert len(line) < 300
    assert one_line(HUGE) in line
