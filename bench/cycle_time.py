"""2. Wall time and CPU of one cycle over 10,000 live incidents, and of evaluation alone.

The sandbox runs in its own process (``bench.live_sandbox``) so the CPU
measured here (``time.process_time``) is the daemon's alone; the sandbox's
CPU is read from /proc and shown beside it. The cycle is the daemon's
``run_once`` with five rules sharing one query and nothing due (the steady
state), at the product's default client rate (1000 requests/min, one second
of burst), so the wall time includes the token bucket's waits, which are
shown separately. Each measured cycle starts with a full bucket, as a cycle
a minute apart does.

Evaluation alone is ``rule.evaluate(incidents, EvaluationContext(now, catalog))`` over the
10,000 incidents already fetched: the cycle's five rules (the target), and for
scale a worst case where every rule plans an action for most incidents.
"""

from __future__ import annotations

import cProfile
import gc
import pstats
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

import automations.incidentio.caller as caller_module
from automations.config import load_config
from automations.daemon import run_once
from automations.incidentio import Incident, TokenBucket
from automations.rules.base import AnyRule, EvaluationContext
from automations.runtime import Runtime, build_rules
from bench.common import (
    Check,
    GcTimer,
    SandboxProcess,
    Section,
    Timing,
    close_rule,
    escalate_rule,
    median,
    mirror_rule,
    process_cpu_seconds,
    quiet_logs,
    runtime_for,
    shared_rules,
    table,
    timed,
    write_config,
)

LIVE_INCIDENTS = 10_000
RULES = 5
CLIENT_RATE = 1000  # the product's default requests_per_minute
CYCLE_TARGET = 3.0
EVALUATION_TARGET = 0.2


def _cycle(
    runtime: Runtime, sandbox_pid: int, after: Callable[[], object] | None = None
) -> dict[str, float]:
    """One timed ``run_once``; ``after`` runs inside the timing, as if part of the cycle."""
    bucket = runtime.client.rate_limiter
    waited = bucket.waited_seconds
    sandbox_before = process_cpu_seconds(sandbox_pid) or 0.0
    reports: list[Any] = []
    found: list[object] = []

    def work() -> None:
        reports.extend(run_once(runtime))
        if after is not None:
            found.append(after())

    with GcTimer() as collector:
        timing = timed(work)
    if any(report.error for report in reports) or sum(r.incidents_seen for r in reports) == 0:
        raise RuntimeError(f"the cycle failed: {[r.line() for r in reports]}")
    return {
        "wall": timing.wall,
        "cpu": timing.cpu,
        "limiter_wait": bucket.waited_seconds - waited,
        "sandbox_cpu": (process_cpu_seconds(sandbox_pid) or 0.0) - sandbox_before,
        "requests": sum(r.api_requests for r in reports),
        "gc": collector.seconds,
        "after": float(found[0]) if found and isinstance(found[0], int) else 0.0,
    }


# (file suffix, function name) pairs whose cumulative time makes up each part of the split
PROFILE_PARTS: dict[str, tuple[tuple[str, str], ...]] = {
    "HTTP (httpx request/response)": (("httpx/_client.py", "request"),),
    "JSON -> models (pydantic validate_json)": (("~", "validate_json"),),
    "rules' evaluate": (("automations/poll.py", "_evaluate_page"),),
    "ledger (run rows, done keys)": (
        ("automations/ledger/runs.py", "start"),
        ("automations/ledger/runs.py", "finish"),
        ("automations/ledger/events.py", "done_keys"),
    ),
}


def profile_split(runtime: Runtime) -> dict[str, float]:
    """One more cycle under cProfile (slower than unprofiled): where its time goes."""
    profile = cProfile.Profile()
    with GcTimer() as collector:
        profile.enable()
        started = time.perf_counter()
        run_once(runtime)
        total = time.perf_counter() - started
        profile.disable()
    stats: dict[Any, Any] = vars(pstats.Stats(profile))["stats"]
    split: dict[str, float] = {"cycle (profiled)": total}
    for label, functions in PROFILE_PARTS.items():
        split[label] = sum(
            cumulative
            for (filename, _, function), (_, _, _, cumulative, _) in stats.items()
            for suffix, name in functions
            if filename.endswith(suffix) and (function == name or f"'{name}'" in function)
        )
    split["cyclic GC"] = collector.seconds
    return split


M = TypeVar("M", bound=BaseModel)


def _parse_frozen(wrapper: type[M], content: bytes) -> M:
    """What-if: parse a page, then move everything tracked so far out of the collector's sight."""
    gc.disable()
    try:
        return wrapper.model_validate_json(content)
    finally:
        gc.freeze()
        gc.enable()


def _thaw() -> int:
    """End of a frozen cycle: unfreeze, then one full collection (what it found is returned).

    The full collection is not optional: httpx keeps each response in a reference
    cycle (Response <-> BoundSyncStream), so the frozen pages' response bodies
    (~1.2 MB per page of 250) would otherwise wait in the oldest generation.
    """
    gc.unfreeze()
    return gc.collect()


def frozen_cycles(runtime: Runtime, sandbox_pid: int, repeats: int) -> list[dict[str, float]]:
    """Cycles with each page frozen as parsed; unfrozen and fully collected after the cycle."""
    namespace = vars(caller_module)  # where the client looks the parser up on each page
    original = namespace["parse_without_gc"]
    namespace["parse_without_gc"] = _parse_frozen
    runs = []
    try:
        for _ in range(repeats):
            runs.append(_cycle(runtime, sandbox_pid, after=_thaw))
    finally:
        namespace["parse_without_gc"] = original
        gc.unfreeze()
    return runs


def _refill(bucket: TokenBucket) -> None:
    """Wait until the bucket is full again, as it is when cycles are a minute apart."""
    time.sleep(bucket.capacity / (bucket.rate_per_minute / 60.0) + 0.05)


def _evaluate_all(rules: Sequence[AnyRule], incidents: list[Incident], runtime: Runtime) -> int:
    now = runtime.engine.clock()
    return sum(
        len(rule.evaluate(incidents, EvaluationContext(now, runtime.catalog, None)))
        for rule in rules
    )


def _evaluation(
    rules: Sequence[AnyRule], incidents: list[Incident], runtime: Runtime, repeats: int
) -> dict[str, float]:
    planned = _evaluate_all(rules, incidents, runtime)
    timings: list[Timing] = [
        timed(lambda: _evaluate_all(rules, incidents, runtime)) for _ in range(repeats)
    ]
    return {
        "wall": median([t.wall for t in timings]),
        "cpu": median([t.cpu for t in timings]),
        "planned": planned,
        "rules": len(rules),
    }


def run(quick: bool) -> Section:
    with quiet_logs():
        return _run(quick)


def _run(quick: bool) -> Section:
    repeats = 1 if quick else 5
    with SandboxProcess(LIVE_INCIDENTS) as sandbox, tempfile.TemporaryDirectory() as directory:
        assert sandbox.process is not None
        pid = sandbox.process.pid
        folder = Path(directory)
        cycle_path = write_config(
            folder, sandbox.base_url, shared_rules(RULES), requests_per_minute=CLIENT_RATE
        )
        worst = [
            escalate_rule("escalate-all-due", after="1m", max_actions=100_000),
            close_rule("close-all-due", idle_for="1m"),
            mirror_rule("mirror-phase"),
        ]
        eval_dir = folder / "worst"
        eval_dir.mkdir()
        worst_path = write_config(eval_dir, sandbox.base_url, worst)
        with runtime_for(cycle_path) as runtime:
            first = _cycle(runtime, pid)
            cycles = []
            for _ in range(repeats):
                _refill(runtime.client.rate_limiter)
                cycles.append(_cycle(runtime, pid))
            unlimited = TokenBucket(rate_per_minute=1e9, burst=1_000_000)
            runtime.client.rate_limiter = unlimited
            unthrottled = [_cycle(runtime, pid) for _ in range(repeats)]
            frozen = frozen_cycles(runtime, pid, repeats)
            split = {} if quick else profile_split(runtime)
            query = runtime.rules[0].query()
            incidents = list(runtime.client.iter_incidents(query))
            evaluation = _evaluation(runtime.rules, incidents, runtime, max(3, repeats))
            worst_rules = build_rules(load_config(worst_path), runtime.catalog)
            worst_eval = _evaluation(worst_rules, incidents, runtime, max(3, repeats))
    return report(first, cycles, unthrottled, frozen, evaluation, worst_eval, len(incidents), split)


def _med(runs: Sequence[dict[str, float]], key: str) -> float:
    return median([r[key] for r in runs])


def report(
    first: dict[str, float],
    cycles: Sequence[dict[str, float]],
    unthrottled: Sequence[dict[str, float]],
    frozen: Sequence[dict[str, float]],
    evaluation: dict[str, float],
    worst: dict[str, float],
    incidents: int,
    split: dict[str, float],
) -> Section:
    wall, cpu = _med(cycles, "wall"), _med(cycles, "cpu")

    def cycle_row(label: str, runs: Sequence[dict[str, float]]) -> tuple[object, ...]:
        return (
            label,
            f"{_med(runs, 'wall'):.3f}",
            f"{_med(runs, 'cpu'):.3f}",
            f"{_med(runs, 'gc'):.3f}",
            f"{_med(runs, 'limiter_wait'):.3f}",
            f"{_med(runs, 'sandbox_cpu'):.2f}",
            int(_med(runs, "requests")),
        )

    def eval_row(label: str, found: dict[str, float]) -> tuple[object, ...]:
        return (label, f"{found['wall']:.4f}", f"{found['cpu']:.4f}", "", "", "", 0)

    rows = [
        cycle_row(f"cycle, {CLIENT_RATE}/min client limit (median of {len(cycles)})", cycles),
        cycle_row("first cycle (the sandbox renders and caches every incident)", [first]),
        cycle_row(f"cycle, client limit off (median of {len(unthrottled)})", unthrottled),
        cycle_row(
            "what-if, client limit off: pages frozen out of the GC during the cycle "
            "(`gc.freeze()` per page; `gc.unfreeze()` + one full `gc.collect()` after, "
            f"which found {int(_med(frozen, 'after')):,} unreachable objects)",
            frozen,
        ),
        eval_row(
            f"evaluation alone: the cycle's {int(evaluation['rules'])} rules, "
            f"{int(evaluation['planned'])} actions planned",
            evaluation,
        ),
        eval_row(
            f"evaluation alone, worst case: {int(worst['rules'])} rules planning "
            f"{int(worst['planned']):,} actions",
            worst,
        ),
    ]
    header = (
        "measured",
        "wall s",
        "CPU s (daemon)",
        "of which GC s",
        "token-bucket wait s",
        "sandbox CPU s",
        "requests",
    )
    total = split.get("cycle (profiled)", 0.0)
    split_rows = [
        (label, f"{seconds:.3f}", f"{100 * seconds / total:.0f}%")
        for label, seconds in split.items()
    ]
    split_lines = [
        "",
        "Where one cycle's time goes (one more cycle under cProfile, client limit off; "
        "cumulative times, GC from `gc.callbacks`; parts overlap where GC runs inside them):",
        "",
        *table(("part", "s", "share"), split_rows),
    ]
    return Section(
        number=2,
        title=f"Wall time and CPU of one cycle over {incidents:,} live incidents",
        command="python -m bench (bench/cycle_time.py; sandbox: python -m bench.live_sandbox)",
        checks=[
            Check(
                f"one cycle over {incidents:,} incidents, wall",
                f"<= {CYCLE_TARGET:g} s",
                f"{wall:.2f} s (CPU {cpu:.2f} s)",
                wall <= CYCLE_TARGET,
            ),
            Check(
                f"evaluation alone, {int(evaluation['rules'])} rules x {incidents:,} incidents",
                f"<= {EVALUATION_TARGET:g} s",
                f"{evaluation['wall']:.3f} s (worst case {worst['wall']:.3f} s)",
                evaluation["wall"] <= EVALUATION_TARGET,
            ),
        ],
        body=[
            f"{RULES} rules (escalate_severity and sync_status) share `status_category = live`; "
            f"nothing is due, so a cycle is {int(_med(cycles, 'requests'))} list pages. The worst "
            "case evaluates an escalation due for every incident below Major, a close-when-idle "
            "due for every incident with a lead, and a Phase mirror (actions are planned, not "
            "applied).",
            "",
            *table(header, rows),
            *(split_lines if split else []),
        ],
        raw={
            "profile_split": split,
            "first": first,
            "cycles": list(cycles),
            "unthrottled": list(unthrottled),
            "what_if_gc_frozen": list(frozen),
            "evaluation": evaluation,
            "evaluation_worst_case": worst,
        },
    )
