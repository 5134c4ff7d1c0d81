"""A ledger file deleted or replaced under a running daemon stops it (exit 1) with one clear
error, instead of claims going into a file nobody will open again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from automations.errors import LedgerReplaced
from automations.ledger import Ledger
from automations.ledger.watch import LedgerFile
from tests.daemon_process import DaemonProcess
from tests.engine_harness import Harness

RULE = """
[[rules]]
name = "escalate"
type = "escalate_severity"
every = "1s"
where = { status_category = ["live"] }
steps = [ { after = "2h", to = "Major" } ]
"""


def delete(path: Path) -> None:
    path.unlink()


def replace(path: Path) -> None:
    """What a restore from backup or a careless `mv` does: another file under the same name."""
    other = path.with_name("other.db")
    Ledger(other).close()
    os.replace(other, path)


def test_the_file_the_ledger_opened_passes_and_a_deleted_or_replaced_one_does_not(
    tmp_path: Path,
) -> None:
    """The check names the file and says why it stops; a memory ledger has nothing to check."""
    path = tmp_path / "ledger.db"
    with Ledger(path):
        watched = LedgerFile(path)
        watched.check()
        replace(path)
        with pytest.raises(LedgerReplaced, match="the path now names another file"):
            watched.check()
    watched = LedgerFile(path)
    delete(path)
    with pytest.raises(LedgerReplaced) as raised:
        watched.check()
    assert str(raised.value).startswith(
        f"ledger file {path} was deleted or replaced (it is gone); stopping: a new file would "
        "forget every action done"
    )
    LedgerFile(Path(":memory:")).check()


@pytest.mark.parametrize("change", [delete, replace])
def test_a_running_daemon_stops_with_exit_1_when_its_ledger_goes(
    harness: Harness, change: object
) -> None:
    """The next job finds out: the daemon stops, with the error as its last line and exit 1."""
    assert callable(change)
    harness.write(RULE)
    daemon = DaemonProcess(harness)
    try:
        daemon.wait_for_line("cycle every 1s")
        change(harness.ledger_path)
        code = daemon.wait_exit(timeout=10)
    finally:
        daemon.kill()

    assert code == 1, daemon.log
    assert f"ledger file {harness.ledger_path} was deleted or replaced" in daemon.log
    assert daemon.lines[-1].startswith("error: ledger file"), daemon.log
    assert "daemon stopped" in daemon.log
    assert "Traceback" not in daemon.log
