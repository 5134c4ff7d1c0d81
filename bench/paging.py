"""6. Paging the same 10,000 incidents: this client against the naive approach, in one run.

Same sandbox process, same client class, same rules (five sharing
``status_category = live``); only the strategy differs:

- this client: the engine's ``poll``: each distinct query once per cycle,
  page size 250, the result shared by every rule;
- naive: every rule polls for itself with page size 25 (the API's default).

The client's token bucket is switched off for both so the wall time is the
work itself; the time each would need under the API's limit (1200/min, a
20-request burst) is computed from its request count beside it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from automations.incidentio import TokenBucket
from automations.runtime import Runtime
from bench.common import (
    Check,
    SandboxProcess,
    Section,
    median,
    quiet_logs,
    runtime_for,
    shared_rules,
    table,
    write_config,
)

LIVE_INCIDENTS = 10_000
RULES = 5
NAIVE_PAGE_SIZE = 25
API_PER_SECOND = 20.0  # 1200/min
API_BURST = 20


def _measure(runtime: Runtime, naive: bool) -> dict[str, float]:
    client = runtime.client
    before = client.counter.total()
    wall, cpu = time.perf_counter(), time.process_time()
    if naive:
        seen = sum(
            sum(1 for _ in client.iter_incidents(rule.query(), page_size=NAIVE_PAGE_SIZE))
            for rule in runtime.rules
        )
    else:
        # As the engine polls: each distinct query once at 250 a page, shared by its rules.
        queries = {rule.query().key(): rule.query() for rule in runtime.rules}
        counts = {
            key: sum(len(page.incidents) for page in client.iter_incident_pages(query))
            for key, query in queries.items()
        }
        seen = sum(counts[rule.query().key()] for rule in runtime.rules)
    return {
        "wall": time.perf_counter() - wall,
        "cpu": time.process_time() - cpu,
        "requests": client.counter.total() - before,
        "incidents_handed_to_rules": seen,
    }


def at_api_limit(requests: float) -> float:
    """The least time ``requests`` take under 1200/min with a 20-request burst."""
    return max(0.0, (requests - API_BURST) / API_PER_SECOND)


def run(quick: bool) -> Section:
    with quiet_logs():
        return _run(quick)


def _run(quick: bool) -> Section:
    repeats = 1 if quick else 3
    ours: list[dict[str, float]] = []
    naive: list[dict[str, float]] = []
    with SandboxProcess(LIVE_INCIDENTS) as sandbox, tempfile.TemporaryDirectory() as directory:
        path = write_config(Path(directory), sandbox.base_url, shared_rules(RULES))
        with runtime_for(path) as runtime:
            runtime.client.rate_limiter = TokenBucket(rate_per_minute=1e9, burst=1_000_000)
            _measure(runtime, naive=False)  # warm the sandbox's render cache
            for _ in range(repeats):
                ours.append(_measure(runtime, naive=False))
                naive.append(_measure(runtime, naive=True))
    return report(ours, naive)


def _row(name: str, runs: list[dict[str, float]]) -> tuple[Any, ...]:
    requests = median([r["requests"] for r in runs])
    return (
        name,
        int(requests),
        f"{median([r['wall'] for r in runs]):.2f}",
        f"{median([r['cpu'] for r in runs]):.2f}",
        f"{at_api_limit(requests):.1f}",
        f"{int(runs[0]['incidents_handed_to_rules']):,}",
    )


def report(ours: list[dict[str, float]], naive: list[dict[str, float]]) -> Section:
    ours_req = median([r["requests"] for r in ours])
    naive_req = median([r["requests"] for r in naive])
    ours_wall = median([r["wall"] for r in ours])
    naive_wall = median([r["wall"] for r in naive])
    rows = [
        _row(f"this client: one shared poll, page size 250, {RULES} rules", ours),
        _row(f"naive: one poll per rule, page size {NAIVE_PAGE_SIZE}, {RULES} rules", naive),
        (
            "naive / this client",
            f"{naive_req / ours_req:.0f}x",
            f"{naive_wall / ours_wall:.1f}x",
            f"{median([r['cpu'] for r in naive]) / median([r['cpu'] for r in ours]):.1f}x",
            f"{at_api_limit(naive_req) / max(at_api_limit(ours_req), 0.05):.0f}x",
            "",
        ),
    ]
    header = (
        "strategy",
        "requests",
        f"wall s (median of {len(ours)})",
        "client CPU s",
        "least s at 1200/min",
        "incidents handed to rules",
    )
    return Section(
        number=6,
        title=f"Paging the same {LIVE_INCIDENTS:,} incidents: this client against the naive way",
        command="python -m bench (bench/paging.py; sandbox: python -m bench.live_sandbox)",
        checks=[
            Check(
                "requests, naive / this client (no target: the comparison itself)",
                "none (a comparison)",
                f"{int(naive_req)} vs {int(ours_req)} requests; {naive_wall:.1f} s vs "
                f"{ours_wall:.1f} s",
                None,
            )
        ],
        body=[
            "Both against the same sandbox process and the same client; the client's token "
            "bucket is off so wall time is the work. Under the API's 1200/min the naive way "
            "could not go faster than the `least s` column, and would share that budget with "
            "every other user of the key.",
            "",
            *table(header, rows),
        ],
        raw={"ours": ours, "naive": naive},
    )
