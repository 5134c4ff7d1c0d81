"""7. One cycle over a ledger holding 1,000,000 events of the rule.

A ledger is filled with 1,000,000 applied events of one escalate rule (spread
over the last 300 days, so retention prunes none of them), next to a sandbox
in a subprocess holding 1,000 live incidents, all due for the rule's first
step. ``automations once`` runs in a subprocess (peak RSS as in benchmark 3,
its own ``VmHWM``), once on an empty ledger and once on the full one: the
difference is what the ledger's size costs a cycle. Then, in this process, the
lookup that decides which of the 1,000 candidates were already done is timed
two ways: loading every key of the rule into a set (what the engine did before,
``event_keys``) and asking only for the candidates' keys (``done_keys``, in
batches), each with its peak of Python allocations (tracemalloc); so is the
query retention runs at most hourly to find incidents whose events are all old.
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from automations.ledger import Ledger
from bench.common import Check, SandboxProcess, Section, escalate_rule, table, write_config
from bench.memory import cli, run_child

EVENTS = 1_000_000
QUICK_EVENTS = 100_000
LIVE = 1_000
RULE = "escalate-0"
TARGET_EXTRA_MB = 10.0  # a full ledger may cost a cycle this much RSS over an empty one
TARGET_LOOKUP_S = 0.1


def fill(path: Path, count: int) -> None:
    """``count`` applied events of RULE for made-up incidents, written straight to SQLite."""
    Ledger(path).close()  # create and migrate
    rng = random.Random(7)
    now = datetime.now(UTC)
    body = '{"incident": {"severity_id": "01MAJOR"}, "notify_incident_channel": false}'

    def rows() -> Any:
        for n in range(count):
            at = (now - timedelta(seconds=rng.uniform(3600, 300 * 86400))).isoformat()
            incident = f"01FAKE{n:020d}"
            yield (
                RULE,
                incident,
                f"INC-{n + 100_000}",
                f"Made-up incident {n}",
                f"{RULE}/{incident}/severity-01MAJOR",
                "applied",
                "open for a long time; step 1: severity Minor -> Major",
                body,
                "req-id",
                at,
                at,
            )

    db = sqlite3.connect(path)
    try:
        with db:
            db.executemany(
                "INSERT INTO events (rule, incident_id, incident_reference, incident_name, "
                "event_key, state, reason, request_body, request_id, claimed_at, finished_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows(),
            )
        # Into the database file, as a daemon's checkpoints would have done over time; else
        # the first cycle measured would be copying a 200 MB write-ahead log.
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def measured(func: Callable[[], object]) -> tuple[float, float, object]:
    """Wall seconds and peak traced MB of one call, and its result."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = func()
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return seconds, peak / 1e6, result


def lookups(path: Path, count: int) -> dict[str, dict[str, float]]:
    """Both ways of finding which of LIVE candidate keys are done, on the full ledger."""
    rng = random.Random(8)
    candidates = [f"{RULE}/01FAKE{rng.randrange(count):020d}/severity-01MAJOR" for _ in range(LIVE)]
    candidates[: LIVE // 2] = [f"{RULE}/01NEW{n:021d}/severity-01MAJOR" for n in range(LIVE // 2)]
    with Ledger(path) as ledger:
        db = sqlite3.connect(path)
        try:

            def every_key() -> set[str]:
                prefix = f"{RULE}/"
                rows = db.execute(
                    "SELECT event_key FROM events WHERE event_key >= ? AND event_key < ? "
                    "AND state != 'rearmed'",
                    [prefix, prefix + "\U0010ffff"],
                ).fetchall()
                return {key for (key,) in rows}

            old_s, old_mb, everything = measured(every_key)
            new_s, new_mb, done = measured(lambda: ledger.events.done_keys(candidates))
            now = datetime.now(UTC)
            prune_s, prune_mb, _ = measured(
                lambda: ledger.retention.candidates(
                    now - timedelta(days=400), checked_before=now, limit=100
                )
            )
            # The worst case: a third of the ledger is old, and every incident of it was
            # asked about lately and kept (e.g. a mirror over closed incidents).
            cutoff = now - timedelta(days=200)
            with db:
                db.execute(
                    "INSERT INTO retention_checks SELECT DISTINCT incident_id, ? FROM events "
                    "WHERE claimed_at < ?",
                    [now.isoformat(), cutoff.isoformat()],
                )
            kept_s, kept_mb, kept = measured(
                lambda: ledger.retention.candidates(
                    cutoff, checked_before=now - timedelta(days=7), limit=100
                )
            )
            assert kept == []
        finally:
            db.close()
    assert isinstance(everything, set)
    assert done == everything & set(candidates)
    return {
        "every key of the rule (before)": {"s": old_s, "mb": old_mb},
        "the candidates' keys (done_keys)": {"s": new_s, "mb": new_mb},
        "retention's hourly query for incidents to ask about": {"s": prune_s, "mb": prune_mb},
        "the same, a third of the events old and all kept (worst case)": {
            "s": kept_s,
            "mb": kept_mb,
        },
    }


def run(quick: bool) -> Section:
    count = QUICK_EVENTS if quick else EVENTS
    results: dict[str, Any] = {"events": count, "live": LIVE}
    rows = []
    rule = escalate_rule(RULE, after="1h", max_actions=10)
    with tempfile.TemporaryDirectory() as directory, SandboxProcess(LIVE) as sandbox:
        for label, events in (("empty ledger", 0), (f"{count:,} events", count)):
            folder = Path(directory) / str(events)
            folder.mkdir()
            path = write_config(folder, sandbox.base_url, [rule])
            if events:
                fill(folder / "automations.db", events)
            once = run_child(cli("once", "--config", str(path)))
            results[label] = {"mb": once.rss_mb, "s": once.seconds}
            rows.append(
                (f"`automations once`, {label}", f"{once.rss_mb:.1f}", f"{once.seconds:.2f}")
            )
        results["lookup"] = lookups(Path(directory) / str(count) / "automations.db", count)
    extra = results[f"{count:,} events"]["mb"] - results["empty ledger"]["mb"]
    new = results["lookup"]["the candidates' keys (done_keys)"]
    return Section(
        number=7,
        title=f"One cycle over a ledger holding {count:,} events of the rule",
        command="python -m bench (bench/ledger_scale.py)",
        checks=[
            Check(
                f"extra peak RSS of a cycle, {count:,}-event ledger over an empty one",
                f"<= {TARGET_EXTRA_MB:g} MB",
                f"{extra:.1f} MB",
                extra <= TARGET_EXTRA_MB,
            ),
            Check(
                f"done-key lookup for {LIVE:,} candidates in a {count:,}-event ledger",
                f"<= {TARGET_LOOKUP_S * 1000:g} ms",
                f"{new['s'] * 1000:.1f} ms",
                new["s"] <= TARGET_LOOKUP_S,
            ),
        ],
        body=[
            *table(("process", "peak RSS MB", "wall s"), rows),
            "",
            *table(
                ("lookup on the full ledger", "wall ms", "peak Python allocations MB"),
                [
                    (name, f"{v['s'] * 1000:.1f}", f"{v['mb']:.1f}")
                    for name, v in results["lookup"].items()
                ],
            ),
        ],
        raw=results,
    )
