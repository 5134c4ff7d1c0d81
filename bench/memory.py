"""3. Peak RSS of the daemon holding 10,000 live incidents.

``automations once`` runs in a subprocess (the real CLI, a generated config
with five rules sharing ``status_category = live``) against the sandbox in
another subprocess; its peak RSS is what ``os.wait4``'s ``ru_maxrss``
would report for that one child, except that Linux carries a parent's peak
RSS over a child's exec, so the child reports its own ``VmHWM`` at exit
instead. The same command against 100 live incidents, and
``automations validate --offline``, give the baselines (interpreter, imports,
catalog) so the cost of the incidents themselves shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    API_KEY,
    ROOT,
    Check,
    SandboxProcess,
    Section,
    shared_rules,
    table,
    write_config,
)

LIVE_INCIDENTS = 10_000
TARGET_MB = 100.0


# Runs ``python -m MODULE ARGS`` and, at exit, writes the process's VmHWM (peak RSS of its
# own address space, from /proc) to the file named by BENCH_RSS_FILE. ru_maxrss from wait4
# would not do: Linux carries the parent's peak RSS over the child's exec (vfork/exec), so
# a child of this (large) benchmark process would report at least the parent's size.
WRAPPER = """
import atexit, os, runpy, sys

def report():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                with open(os.environ["BENCH_RSS_FILE"], "w") as out:
                    out.write(line.split()[1])

atexit.register(report)
module = sys.argv[2]
sys.argv = [module, *sys.argv[3:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


@dataclass(frozen=True)
class Child:
    """A finished child process: peak RSS (MB), wall seconds, and what it printed."""

    rss_mb: float
    seconds: float
    stdout: str


def run_child(args: list[str]) -> Child:
    """``python -m MODULE ARGS`` (``args`` starts with ``-m MODULE``) with the sandbox's key."""
    with tempfile.TemporaryDirectory() as directory:
        rss_file = Path(directory) / "vmhwm"
        env = {**os.environ, "INCIDENT_IO_API_KEY": API_KEY, "BENCH_RSS_FILE": str(rss_file)}
        env.pop("INCIDENT_IO_API_KEY_FILE", None)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", WRAPPER, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0 or not rss_file.exists():
            raise RuntimeError(f"python {' '.join(args)} exited {done.returncode}: {done.stderr}")
        kib = int(rss_file.read_text())
    return Child(kib * 1024 / 1e6, seconds, done.stdout)  # MB, as the target is written


def cli(*args: str) -> list[str]:
    return ["-m", "automations", "--log-level", "WARNING", *args]


def run(quick: bool) -> Section:
    example = str(ROOT / "config" / "example.toml")
    validate = run_child(cli("validate", "--offline", "--config", example))
    rows = [
        (
            "`automations validate --offline` (interpreter, imports, config)",
            f"{validate.rss_mb:.1f}",
            f"{validate.seconds:.2f}",
            "",
        )
    ]
    results: dict[str, Any] = {"validate_offline_mb": validate.rss_mb}
    with tempfile.TemporaryDirectory() as directory:
        for live in (100, LIVE_INCIDENTS):
            folder = Path(directory) / str(live)
            folder.mkdir()
            with SandboxProcess(live) as sandbox:
                path = write_config(folder, sandbox.base_url, shared_rules(5))
                once = run_child(cli("once", "--config", str(path)))
                results[f"once_{live}"] = {"mb": once.rss_mb, "s": once.seconds}
                rows.append(
                    (
                        f"`automations once`, {live:,} live incidents",
                        f"{once.rss_mb:.1f}",
                        f"{once.seconds:.2f}",
                        "",
                    )
                )
    big = results[f"once_{LIVE_INCIDENTS}"]["mb"]
    small = results["once_100"]["mb"]
    per_incident_kb = (big - small) * 1000 / (LIVE_INCIDENTS - 100)
    results["per_incident_kb"] = per_incident_kb
    return Section(
        number=3,
        title=f"Peak RSS of the daemon holding {LIVE_INCIDENTS:,} live incidents",
        command="python -m bench (bench/memory.py): python -m automations once --config GENERATED",
        checks=[
            Check(
                f"peak RSS, `automations once` over {LIVE_INCIDENTS:,} live incidents",
                f"<= {TARGET_MB:g} MB",
                f"{big:.1f} MB",
                big <= TARGET_MB,
            )
        ],
        body=[
            "Peak resident set size of each child process alone (its own `VmHWM`, written at "
            "exit; `ru_maxrss` would include this benchmark's own size, see bench/memory.py), "
            "five rules "
            f"sharing one query. Each incident held costs about {per_incident_kb:.1f} KB over "
            "the 100-incident baseline.",
            "",
            *table(("process", "peak RSS MB", "wall s", ""), rows),
        ],
        raw=results,
    )
