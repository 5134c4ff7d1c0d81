"""What every benchmark shares: the machine, a sandbox full of live incidents, configs, results.

The sandbox is the product's own (``automations.sandbox``), seeded here with
exactly N *live* incidents (the seeded history mixes every category), built
with the same generator the sandbox uses for its own history.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from automations.config import load_config
from automations.runtime import Runtime, build_runtime
from automations.sandbox.model import FollowUp
from automations.sandbox.seed.ages import MAX_AGE_S, MIN_AGE_S
from automations.sandbox.seed.catalog import build_catalog
from automations.sandbox.seed.incidents import _Generator
from automations.sandbox.state import SandboxState
from automations.sandbox.store import Store

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "sandbox"
UNLIMITED_PER_MINUTE = 10_000_000  # the sandbox's own limit, out of the way of the client's
PAGE_SIZE = 250


# -- results ------------------------------------------------------------------------------------


@dataclass
class Check:
    """One target: what was measured against it, and whether it was met (None: not measured)."""

    name: str
    target: str
    measured: str
    met: bool | None


@dataclass
class Section:
    """One benchmark's part of docs/benchmarks.md."""

    number: int
    title: str
    command: str
    checks: list[Check] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    notes: str = ""


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def verdict(met: bool | None) -> str:
    """None: no target (a comparison) or not measured yet (see the measured column)."""
    return {True: "met", False: "**not met**", None: "-"}[met]


# -- the machine --------------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Where and when the numbers were taken (load average at the start of the run)."""
    load = os.getloadavg()
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in load],
        "commit": f"{commit}{' (with uncommitted changes)' if dirty else ''}",
    }


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return ""
    return done.stdout.strip()


# -- timing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Wall clock and this process's CPU time of one call."""

    wall: float
    cpu: float


def timed(func: Callable[[], object]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    func()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


class GcTimer:
    """Seconds spent in the cyclic garbage collector while active (via ``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0

    def _callback(self, phase: str, info: Mapping[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self._callback)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """The daemon's per-cycle log lines (and safety-brake errors we provoke) stay out of the way.

    Restores the level afterwards, so a test that measures does not silence later tests.
    """
    logger = logging.getLogger("automations")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


# -- a sandbox holding exactly N live incidents -------------------------------------------------


def live_store(count: int, *, seed: int = 1, anchor: datetime) -> Store:
    """``count`` live, standard-mode incidents, created log-uniformly 2 minutes to 180 days ago.

    Same generator as the sandbox's seeded history (severities, roles, custom
    fields, timestamps, updates), with the category forced to live.
    """
    catalog = build_catalog(seed)
    generator = _Generator(seed, catalog, anchor)
    low, high = math.log(MIN_AGE_S), math.log(MAX_AGE_S)
    ages = sorted((math.exp(generator.rng.uniform(low, high)) for _ in range(count)), reverse=True)
    for index, age in enumerate(ages):
        generator.incident(index + 1, age, {"category": "live", "mode": "standard"})
    return Store(catalog, generator.history, seed)


def load_live(state: SandboxState, count: int, *, seed: int = 1) -> None:
    """Reset the sandbox (no rate limit to speak of) and give it ``count`` live incidents."""
    state.reset(replace(state.config, incidents=0, rate_limit_per_minute=UNLIMITED_PER_MINUTE))
    state.store = live_store(count, seed=seed, anchor=state.clock.now())


class SandboxProcess:
    """``python -m bench.live_sandbox`` in a subprocess, so its CPU is not the client's."""

    def __init__(self, live: int, *, seed: int = 1) -> None:
        self.live = live
        self.seed = seed
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> SandboxProcess:
        command = [sys.executable, "-m", "bench.live_sandbox", "--live", str(self.live)]
        command += ["--seed", str(self.seed)]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("http://"):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the bench sandbox did not start (said {line!r})")
        self.base_url = line
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()  # the server stops when its stdin closes
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None


# -- configs ------------------------------------------------------------------------------------


def toml_value(value: object) -> str:
    """Enough TOML for generated configs: strings, numbers, booleans, arrays, inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, Mapping):
        items = ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def write_config(
    directory: Path,
    base_url: str,
    rules: Sequence[Mapping[str, object]],
    *,
    requests_per_minute: int = 1200,
) -> Path:
    """A config file in ``directory`` (with its ledger there too)."""
    lines = [
        "[incident_io]",
        f"base_url = {toml_value(base_url)}",
        f"requests_per_minute = {requests_per_minute}",
        "",
        "[store]",
        f"path = {toml_value(directory / 'automations.db')}",
    ]
    for rule in rules:
        lines += ["", "[[rules]]", *(f"{key} = {toml_value(v)}" for key, v in rule.items())]
    path = directory / "automations.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


LIVE: dict[str, object] = {"status_category": ["live"]}
NEVER = "3650d"  # older than any incident in the sandbox: the rule has nothing due
UNCAPPED = 1_000_000_000


def escalate_rule(
    name: str,
    *,
    after: str = NEVER,
    where: Mapping[str, object] = LIVE,
    max_actions: int = 10,
    since: str = "created",
) -> dict[str, object]:
    return {
        "name": name,
        "type": "escalate_severity",
        "every": "1m",
        "where": dict(where),
        "since": since,
        "steps": [{"after": after, "to": "Major"}, {"after": "3651d", "to": "Critical"}],
        "max_actions_per_cycle": max_actions,
        "max_actions_per_day": UNCAPPED,  # benchmarks measure cycles, not the daily brake
    }


def close_rule(
    name: str,
    *,
    idle_for: str = NEVER,
    where: Mapping[str, object] = LIVE,
    follow_ups: bool = False,
) -> dict[str, object]:
    """``follow_ups``: also require every follow-up done (the cycle then lists follow-ups)."""
    require: dict[str, object] = {"idle_for": idle_for, "role": {"Incident Lead": "assigned"}}
    if follow_ups:
        require["follow_ups"] = "completed"
    return {
        "name": name,
        "type": "sync_status",
        "every": "1m",
        "where": dict(where),
        "to_status": "Closed",
        "require": require,
    }


def add_follow_ups(store: Store, count: int) -> None:
    """``count`` outstanding follow-ups spread over the store's incidents, in ID order."""
    incidents = store.all()
    creator = {"user": store.catalog.users[0].to_json()}
    for n in range(count):
        incident = incidents[n % len(incidents)]
        store.follow_ups.append(
            FollowUp(
                id=store.new_id(),
                incident_id=incident.id,
                title=f"Follow-up {n}",
                status="outstanding",
                creator=creator,
                created_at=incident.created_at,
                updated_at=incident.created_at,
            )
        )


def mirror_rule(name: str, *, max_actions: int = 10_000) -> dict[str, object]:
    return {
        "name": name,
        "type": "sync_status",
        "every": "1m",
        "where": dict(LIVE),
        "mirror": {"field": "Phase"},
        "max_actions_per_cycle": max_actions,
        "max_actions_per_day": UNCAPPED,  # benchmarks measure cycles, not the daily brake
    }


def shared_rules(count: int) -> list[dict[str, object]]:
    """``count`` rules of both built-in types sharing one query, with nothing due."""
    return [
        escalate_rule(f"escalate-{i}") if i % 2 == 0 else close_rule(f"close-{i}")
        for i in range(count)
    ]


@contextlib.contextmanager
def runtime_for(config_path: Path) -> Iterator[Runtime]:
    """The daemon's own wiring (load_config -> build_runtime), unlocked."""
    runtime = build_runtime(load_config(config_path), SecretStr(API_KEY), lock=False)
    try:
        yield runtime
    finally:
        runtime.close()


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of another process so far (Linux /proc), or None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)
