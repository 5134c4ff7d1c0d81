"""One process per ledger file, whatever its name; a live process's claims and runs are its own.

The lock is on the database file, so a symlink or a hard link meets it. A
process that got in anyway (or one that takes no lock, like ``adopt``) keeps
its in-flight claim and its running run: another process's reconcile and
start-up leave them alone until that process is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from automations.errors import LedgerLocked
from automations.ledger import EventState, Ledger, RunStatus
from automations.ledger.owners import LEASE, Owner, may_settle, this_process
from tests.engine_harness import REPO, Harness
from tests.test_edit_once import ESCALATE_MINOR

H = timedelta(hours=1)
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _links(path: Path) -> tuple[Path, Path]:
    symlink = path.with_name("symlinked.db")
    symlink.symlink_to(path)
    hardlink = path.with_name("hardlinked.db")
    os.link(path, hardlink)
    return symlink, hardlink


def test_a_symlink_or_hard_link_to_a_locked_ledger_is_refused(tmp_path: Path) -> None:
    """The lock follows the file, not its name: both links get LedgerLocked naming our PID."""
    path = tmp_path / "ledger.db"
    with Ledger(path, lock=True):
        for link in _links(path):
            with pytest.raises(LedgerLocked) as caught:
                Ledger(link, lock=True)
            assert caught.value.pid == os.getpid()
            assert caught.value.exit_code == 75
            assert f"PID {os.getpid()}" in str(caught.value)
        assert not (tmp_path / "hardlinked.db-wal").exists(), "refused before SQLite opened it"
    with Ledger(tmp_path / "hardlinked.db", lock=True) as after:
        assert after.locked  # free once the holder closed


def _config(harness: Harness, ledger: Path, name: str) -> Path:
    """The harness's config, on another path to the ledger."""
    text = harness.config_path.read_text().replace(str(harness.ledger_path), str(ledger))
    path = harness.tmp_path / name
    path.write_text(text)
    return path


def _cli(harness: Harness, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "automations", *args, "--config", str(config)]
    result = subprocess.run(command, env=harness.env(), capture_output=True, text=True, timeout=60)
    harness.outputs += [result.stdout, result.stderr]
    return result


def test_a_second_daemon_or_once_through_a_link_exits_75(harness: Harness) -> None:
    """A daemon runs; `once` through a symlink and `run` through a hard link exit 75."""
    harness.write(ESCALATE_MINOR)
    harness.add("Stuck", age=3 * H)
    command = [sys.executable, "-m", "automations", "run", "--config", str(harness.config_path)]
    with subprocess.Popen(
        command, env=harness.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as daemon:
        try:
            deadline = time.monotonic() + 30
            while not harness.posts() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert harness.posts(), "the daemon made its edit"
            symlink, hardlink = _links(harness.ledger_path)

            via_symlink = _cli(harness, _config(harness, symlink, "symlink.toml"), "once")
            via_hardlink = _cli(harness, _config(harness, hardlink, "hardlink.toml"), "run")

            daemon.send_signal(signal.SIGTERM)
            _, stderr = daemon.communicate(timeout=30)
        finally:
            daemon.kill()
    for refused in (via_symlink, via_hardlink):
        assert refused.returncode == 75, refused.stderr
        assert f"locked by PID {daemon.pid}" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert daemon.returncode == 0, stderr
    assert len(harness.posts()) == 1


# A process that claims an action and starts a run, then waits (as if mid-edit) until told.
LIVE_PROCESS = """
import os
import sys
from datetime import datetime
from automations.ledger import Ledger
path, key, incident_id, now = sys.argv[1:5]
moment = datetime.fromisoformat(now)
with Ledger(path) as ledger:
    ledger.events.claim(rule="escalate-minor", incident_id=incident_id, incident_reference="INC-1",
                 event_key=key, reason="in flight", now=moment,
                 request_body={"incident": {"severity_id": "x"}, "notify_incident_channel": True})
    run = ledger.runs.start("every 1m", rules=["escalate-minor"], now=moment)
    print("claimed", flush=True)
    if not sys.stdin.readline():
        os._exit(0)  # stdin closed: stop here, like a crash (the run stays running)
    ledger.runs.finish(run, incidents_seen=1, actions_planned=1, actions_applied=0,
                      actions_failed=0, actions_skipped=0, api_requests=0, now=moment)
    print("finished", flush=True)
"""


@contextmanager
def _live_process(*args: str) -> Iterator[subprocess.Popen[str]]:
    """A live process holding a claim and a running run; it finishes its run when told."""
    command = [sys.executable, "-c", LIVE_PROCESS, *args]
    with subprocess.Popen(
        command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "claimed"
        try:
            yield child
        finally:
            child.kill()


def test_a_live_process_keeps_its_claim_and_its_run(harness: Harness) -> None:
    """`once` neither releases nor acts on a live process's claim, nor closes its run."""
    harness.write(ESCALATE_MINOR)
    stuck = harness.add("Stuck", age=3 * H)
    runtime = harness.runtime()
    try:
        (action,), _ = runtime.engine.plan(runtime.rules)
    finally:
        runtime.close()
    args = (str(harness.ledger_path), action.event_key, stuck["id"])

    with _live_process(*args, harness.sandbox.now().isoformat()) as child:
        meanwhile = harness.cli("once")
        with Ledger(harness.ledger_path) as ledger:
            (event,) = ledger.events.history()
            assert event.state is EventState.PLANNED  # still the live process's claim
            assert any(run.status is RunStatus.RUNNING for run in ledger.runs.history())
        assert child.stdin is not None
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "finished"  # its run was still open
        assert child.wait(timeout=30) == 0
    after = harness.cli("once")

    assert meanwhile.returncode == 0, meanwhile.stderr
    assert "claimed by PID" in meanwhile.stderr
    assert after.returncode == 0, after.stderr
    assert [post["status"] for post in harness.posts()] == [200]  # only once it had gone
    with Ledger(harness.ledger_path) as ledger:
        (event,) = ledger.events.history()
    assert event.state is EventState.APPLIED


def test_runs_of_a_gone_process_are_closed_and_of_a_live_one_kept(tmp_path: Path) -> None:
    """close_interrupted_runs closes the run of a process that exited, not of one that lives."""
    path = tmp_path / "ledger.db"
    gone = subprocess.run(
        [sys.executable, "-c", LIVE_PROCESS, str(path), "r/gone/0", "gone", T0.isoformat()],
        cwd=REPO,
        input="",  # no line: it stops without finishing its run, like a crash
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert gone.stdout.startswith("claimed"), gone.stderr
    with _live_process(str(path), "r/live/0", "live", T0.isoformat()), Ledger(path) as ledger:
        assert ledger.runs.close_interrupted(now=T0 + timedelta(minutes=1)) == 1
        statuses = sorted(run.status.value for run in ledger.runs.history())
    assert statuses == ["failed", "running"]


def test_an_owner_that_cannot_be_checked_is_trusted_for_the_lease_only() -> None:
    """A claim of another host is left alone for LEASE; ours, or a legacy row's, are settled."""
    elsewhere = Owner("another-host", os.getpid(), "abc").text()
    assert not may_settle(elsewhere, T0, T0 + LEASE)
    assert may_settle(elsewhere, T0, T0 + LEASE + timedelta(seconds=1))
    assert may_settle(this_process().text(), T0, T0)
    assert may_settle(None, T0, T0)
    earlier_me = Owner(this_process().host, os.getpid(), "an-earlier-process").text()
    assert may_settle(earlier_me, T0, T0)  # a restarted container is PID 1 again
