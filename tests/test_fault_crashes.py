"""Crashes at every step of an action, hundreds of times: no edit twice, every due edit made.

In-process, a failpoint raises SimulatedCrash at a random step (after the
claim, after the re-read, after the edit, after the confirmation, or while
reconciling) and the "restarted" daemon is a fresh runtime on the same ledger
file. A second test kills real ``automations run`` processes with SIGKILL at
random moments.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

from automations.daemon import run_once
from automations.errors import SimulatedCrash
from automations.failpoints import POINTS, Failpoints
from automations.ledger import Ledger, RunStatus
from automations.runtime import Runtime
from tests.engine_harness import Harness

H = timedelta(hours=1)

ESCALATE_MINOR = """
[[rules]]
name = "escalate-minor"
type = "escalate_severity"
every = "1s"
where = { status_category = ["live"], severity = ["Minor"] }
steps = [ { after = "2h", to = "Major" } ]
notify_incident_channel = true
max_actions_per_cycle = 200
max_actions_per_day = 100000
"""


def _successful_edits(harness: Harness) -> Counter[str]:
    return Counter(post["path"].split("/")[3] for post in harness.posts() if post["status"] == 200)


def _converge(harness: Harness, runtime: Runtime) -> None:
    for _ in range(5):
        (report,) = run_once(runtime)
        assert report.ok, report.line()
        if report.planned == 0:
            return
    raise AssertionError("still planning actions after 5 clean cycles")


def test_random_crashes_over_200_action_cycles_never_edit_twice(harness: Harness) -> None:
    harness.write(ESCALATE_MINOR)
    rng = random.Random(20261124)
    ids: list[str] = []
    crashes: Counter[str] = Counter()
    action_cycles = 0
    points = Failpoints()  # every restart is given the same crash points
    runtime = harness.runtime(failpoints=points)
    try:
        while action_cycles < 200:
            ids += [harness.add(f"Stuck {len(ids) + n}", age=3 * H)["id"] for n in range(2)]
            if rng.random() < 0.7:
                points.arm(rng.choice(POINTS), passes=rng.randrange(3))
            try:
                (report,) = run_once(runtime)
                action_cycles += 1 if report.planned else 0
            except SimulatedCrash as crash:
                crashes[str(crash)] += 1
                action_cycles += 1
                runtime.close()
                runtime = harness.runtime(failpoints=points)  # the restart: same file, fresh state
            points.disarm()
        _converge(harness, runtime)
    finally:
        runtime.close()

    edits = _successful_edits(harness)
    assert set(edits) == set(ids), "every due incident was escalated"
    assert max(edits.values()) == 1, "no incident was edited twice"
    assert {harness.severity(i) for i in rng.sample(ids, 20)} == {"Major"}
    assert set(crashes) >= {"after_claim", "after_reread", "after_edit", "after_confirm"}
    assert sum(crashes.values()) >= 60


def test_kill_9_of_a_running_daemon_never_edits_twice(harness: Harness) -> None:
    harness.write(ESCALATE_MINOR)
    rng = random.Random(9)
    ids: list[str] = []
    command = [sys.executable, "-m", "automations", "run", "--config", str(harness.config_path)]
    for _ in range(8):
        ids += [harness.add(f"Stuck {len(ids) + n}", age=3 * H)["id"] for n in range(15)]
        daemon = subprocess.Popen(
            command, env=harness.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Killed while it works: some time after its first edit of this run (the client's
        # 1000/min limit makes 15 edits take about 2 s, so work is always left over).
        before = len(harness.posts())
        deadline = time.monotonic() + 30
        while len(harness.posts()) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.5))
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(10)
    edited_before_final = len(_successful_edits(harness))
    final = harness.cli("once")
    assert final.returncode == 0, final.stderr

    edits = _successful_edits(harness)
    assert 0 < edited_before_final < len(ids), "the kills landed while there was work to do"
    assert set(edits) == set(ids)
    assert max(edits.values()) == 1


def test_a_run_left_running_by_a_crash_is_closed_at_the_next_start(harness: Harness) -> None:
    harness.write(ESCALATE_MINOR)
    harness.add("Stuck", age=3 * H)
    crashed = harness.cli("once", AUTOMATIONS_FAILPOINTS="after_edit")
    assert crashed.returncode == 137

    assert harness.cli("once").returncode == 0

    with Ledger(harness.ledger_path) as ledger:
        first, second = reversed(ledger.runs.history())
    assert first.status is RunStatus.FAILED
    assert "interrupted" in (first.error or "")
    assert second.status is RunStatus.OK
