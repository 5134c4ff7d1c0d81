"""A cycle's ledger work on SQLite and on PostgreSQL: time and statements, side by side.

``python -m bench.ledger_backends [--quick]``. The same cycles as benchmark 2
(``bench/cycle_time.py``: five rules sharing one query over the live incidents,
nothing due; the client limit off, so the API's pages are the only wait), run
by the daemon's own wiring on a SQLite file and on a PostgreSQL database (a
local server started here, as the tests start it: tests/postgres_server.py),
plus a busy cycle that applies ``ACTING`` escalations (claim, re-read, edit,
record). Every statement the ledger sends is counted and timed at its backend,
so a cycle's ledger cost shows apart from the HTTP and the rules, and an N+1
would show as statements growing with the incidents rather than the actions.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automations.daemon import run_once
from automations.incidentio import TokenBucket
from automations.ledger import Ledger
from automations.runtime import Runtime
from bench.common import (
    SandboxProcess,
    Section,
    escalate_rule,
    median,
    quiet_logs,
    runtime_for,
    shared_rules,
    table,
    write_config,
)

LIVE_INCIDENTS = 10_000
RULES = 5
ACTING = 100  # escalations applied by each busy cycle
BACKENDS = ("sqlite", "postgresql")


@dataclass
class Meter:
    """Statements the ledger sent through its backend, and the seconds they took."""

    statements: int = 0
    seconds: float = 0.0
    by_kind: dict[str, int] = field(default_factory=dict)

    def reset(self) -> None:
        self.statements, self.seconds, self.by_kind = 0, 0.0, {}


def metered(ledger: Ledger) -> Meter:
    """Count and time every call the ledger makes on its backend from now on."""
    meter = Meter()
    backend = ledger.database.backend
    for kind in ("rows", "execute", "begin", "commit", "rollback"):
        original: Callable[..., Any] = getattr(backend, kind)

        def wrapper(*args: Any, _kind: str = kind, _call: Callable[..., Any] = original) -> Any:
            started = time.perf_counter()
            try:
                return _call(*args)
            finally:
                meter.seconds += time.perf_counter() - started
                meter.statements += 1
                meter.by_kind[_kind] = meter.by_kind.get(_kind, 0) + 1

        setattr(backend, kind, wrapper)
    return meter


@dataclass
class Measured:
    wall: float
    ledger: float
    statements: int
    applied: int


def _cycle(runtime: Runtime, meter: Meter) -> Measured:
    meter.reset()
    started = time.perf_counter()
    reports = run_once(runtime)
    wall = time.perf_counter() - started
    if any(report.error for report in reports):
        raise RuntimeError(f"the cycle failed: {[r.line() for r in reports]}")
    applied = sum(report.applied for report in reports)
    return Measured(wall, meter.seconds, meter.statements, applied)


@contextmanager
def _postgres() -> Iterator[Callable[[], str]]:
    from tests.postgres_server import PostgresServer

    server = PostgresServer().start()
    try:
        yield server.database
    finally:
        server.stop()


def _config(folder: Path, base_url: str, rules: list[dict[str, object]], url: str | None) -> Path:
    path = write_config(folder, base_url, rules)
    if url is not None:
        text = path.read_text()
        start = text.index("path = ", text.index("[store]"))
        end = text.index("\n", start)
        path.write_text(f'{text[:start]}url = "{url}"{text[end:]}')
    return path


def measure(backend: str, live: int, repeats: int, database: Callable[[], str]) -> dict[str, Any]:
    """Steady cycles (nothing due) and one busy cycle on ``backend``, each on a fresh sandbox."""
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        url = database() if backend == "postgresql" else None
        with SandboxProcess(live) as sandbox:
            steady = _config(folder, sandbox.base_url, shared_rules(RULES), url)
            with runtime_for(steady) as runtime:
                runtime.client.rate_limiter = TokenBucket(rate_per_minute=1e9, burst=1_000_000)
                meter = metered(runtime.ledger)
                _cycle(runtime, meter)  # the sandbox renders and caches every incident
                found["steady"] = [_cycle(runtime, meter) for _ in range(repeats)]
        busy_dir = folder / "busy"
        busy_dir.mkdir()
        url = database() if backend == "postgresql" else None
        with SandboxProcess(live) as sandbox:
            rules = [escalate_rule("escalate-due", after="1m", max_actions=ACTING)]
            busy = _config(busy_dir, sandbox.base_url, rules, url)
            with runtime_for(busy) as runtime:
                runtime.client.rate_limiter = TokenBucket(rate_per_minute=1e9, burst=1_000_000)
                meter = metered(runtime.ledger)
                found["busy"] = _cycle(runtime, meter)
                found["after_busy"] = _cycle(runtime, meter)  # the next ACTING due
    return found


def run(quick: bool) -> Section:
    live = 1_000 if quick else LIVE_INCIDENTS
    repeats = 2 if quick else 5
    with quiet_logs(), _postgres() as database:
        results = {
            name: measure(name, live, repeats, database) for name in ("sqlite", "postgresql")
        }
    return report(results, live, repeats)


def report(results: dict[str, dict[str, Any]], live: int, repeats: int) -> Section:
    rows = []
    for name, found in results.items():
        steady: list[Measured] = found["steady"]
        busy: Measured = found["busy"]
        again: Measured = found["after_busy"]
        rows += [
            (
                f"{name}: steady cycle, nothing due (median of {repeats})",
                f"{median([m.wall for m in steady]):.3f}",
                f"{median([m.ledger for m in steady]) * 1000:.1f}",
                int(median([m.statements for m in steady])),
                0,
            ),
            (
                f"{name}: busy cycle, {busy.applied} escalations applied",
                f"{busy.wall:.3f}",
                f"{busy.ledger * 1000:.1f}",
                busy.statements,
                busy.applied,
            ),
            (
                f"{name}: the next busy cycle ({again.applied} more)",
                f"{again.wall:.3f}",
                f"{again.ledger * 1000:.1f}",
                again.statements,
                again.applied,
            ),
        ]
    header = ("cycle", "wall s", "ledger ms", "ledger statements", "applied")
    return Section(
        number=8,
        title=f"A cycle's ledger work on SQLite and PostgreSQL ({live:,} live incidents)",
        command="python -m bench.ledger_backends",
        body=[
            f"{RULES} rules share `status_category = live` (benchmark 2's steady cycle, client "
            f"limit off); a busy cycle escalates {ACTING} of the due incidents (the rule's "
            f"brake), and the next one {ACTING} more. PostgreSQL is a local "
            "server (loopback, fsync off as in the tests): each statement is one round trip. "
            "Statements counted at the ledger's backend (BEGIN, COMMIT, each query).",
            "",
            *table(header, rows),
        ],
        raw={
            name: {
                "steady_wall": [m.wall for m in found["steady"]],
                "steady_ledger": [m.ledger for m in found["steady"]],
                "steady_statements": [m.statements for m in found["steady"]],
                "busy": vars(found["busy"]),
                "after_busy": vars(found["after_busy"]),
            }
            for name, found in results.items()
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 incidents, 2 repeats")
    section = run(parser.parse_args().quick)
    print("\n".join(section.body))


if __name__ == "__main__":
    main()
