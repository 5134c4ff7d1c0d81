"""4. Start-up time of ``automations validate --offline``.

The console script users run (``.venv/bin/automations``), timed from spawn to
exit, median of several runs (the variants below run in interleaved rounds so
they share the machine's load), with bytecode cached as for an installed tool
(in a temporary PYTHONPYCACHEPREFIX, filled by two warm-up runs); the last row
is the same without a cache for the project's modules. ``python -c pass`` in
the same run is the interpreter's own floor. ``python -X importtime`` of the same command gives
the top offenders (cumulative import time of the biggest imports, nested
imports included in their parents).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import ROOT, Check, Section, median, table

TARGET = 0.3
EXAMPLE = ROOT / "config" / "example.toml"


def _command() -> list[str]:
    script = Path(sys.executable).with_name("automations")
    if script.exists():
        return [str(script)]
    found = shutil.which("automations")
    return [found] if found else [sys.executable, "-m", "automations"]


def cached_bytecode_env(prefix: Path) -> dict[str, str]:
    """Bytecode cached as for an installed tool, kept in ``prefix`` rather than the tree.

    This environment may set PYTHONDONTWRITEBYTECODE, so every start-up would
    compile the project's own modules from source; pip compiles them at install.
    """
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(prefix)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def wall_time(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, capture_output=True, check=True, env=env)
    return time.perf_counter() - started


def interleaved(
    variants: dict[str, tuple[list[str], dict[str, str] | None]], runs: int
) -> dict[str, list[float]]:
    """``runs`` rounds of one run of each variant, so they share the machine's ups and downs."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, (command, env) in variants.items():
            times[name].append(wall_time(command, env))
    return times


@dataclass(frozen=True)
class Import:
    module: str
    self_us: int
    cumulative_us: int
    depth: int


def import_times(args: list[str], env: dict[str, str]) -> list[Import]:
    """``python -X importtime -m automations ARGS``, parsed."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "automations", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    found = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        fields = line[len("import time:") :].split("|")
        self_us, cumulative, name = int(fields[0]), int(fields[1]), fields[2]
        depth = (len(name) - len(name.lstrip(" "))) // 2
        found.append(Import(name.strip(), self_us, cumulative, depth))
    return found


def top_offenders(imports: list[Import], count: int = 12) -> list[Import]:
    """The largest imports by cumulative time (a parent's time includes its children's)."""
    return sorted(imports, key=lambda i: i.cumulative_us, reverse=True)[:count]


def _inline(args: list[str], preload: str = "") -> list[str]:
    """The CLI run from ``python -c``, optionally after importing ``preload`` first."""
    code = f"import sys; sys.argv = ['automations', *{args!r}]; "
    if preload:
        code += f"import {preload}; "
    code += "from automations.cli import main; main()"
    return [sys.executable, "-c", code]


def run(quick: bool) -> Section:
    runs = 5 if quick else 15
    args = ["validate", "--offline", "--config", str(EXAMPLE)]
    command = [*_command(), *args]
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as prefix:
        env = cached_bytecode_env(Path(prefix))
        for _ in range(2):  # fill the bytecode cache
            wall_time(_inline(args, "httpx, stamina"), env)
        found = interleaved(
            {
                "console": (command, env),
                "inline": (_inline(args), env),
                "eager": (_inline(args, "httpx, stamina"), env),
                "floor": ([sys.executable, "-c", "pass"], env),
                "uncached": (command, None),
            },
            runs,
        )
        imports = import_times(args, env)
    times = found["console"]
    inline, eager = median(found["inline"]), median(found["eager"])
    floor, uncached = median(found["floor"]), median(found["uncached"])
    no_bytecode = "PYTHONDONTWRITEBYTECODE" in os.environ
    total_import_ms = sum(i.cumulative_us for i in imports if i.depth == 0) / 1000
    value = median(times)
    labels = {
        "console": "`automations validate --offline --config config/example.toml`",
        "inline": "the same from `python -c`",
        "eager": "the same from `python -c`, importing httpx and stamina first (as before "
        "the lazy client import)",
        "floor": "`python -c pass` (the interpreter alone)",
        "uncached": "the console script without a bytecode cache for the project's modules"
        + (" (as this environment runs: PYTHONDONTWRITEBYTECODE is set)" if no_bytecode else ""),
    }
    rows = [
        (label, f"{median(found[key]):.3f}", f"{min(found[key]):.3f}", f"{max(found[key]):.3f}")
        for key, label in labels.items()
    ]
    offenders = [
        (f"`{i.module}`", f"{i.cumulative_us / 1000:.1f}", f"{i.self_us / 1000:.1f}", i.depth)
        for i in top_offenders(imports)
    ]
    return Section(
        number=4,
        title="Start-up time of `automations validate --offline`",
        command=f"{' '.join(Path(c).name if c.startswith('/') else c for c in command)}",
        checks=[
            Check(
                "`automations validate --offline`, median wall",
                f"<= {TARGET:g} s",
                f"{value:.3f} s (median of {runs})",
                value <= TARGET,
            )
        ],
        body=[
            *table(("command", f"median of {runs} s", "min s", "max s"), rows),
            "",
            f"`python -X importtime`: {total_import_ms:.0f} ms of imports in all; the largest "
            "(cumulative includes nested imports, so rows overlap; depth 0 = imported by the "
            "entry point):",
            "",
            *table(("module", "cumulative ms", "self ms", "depth"), offenders),
        ],
        raw={
            "times": found,
            "inline": inline,
            "inline_eager_client": eager,
            "python_floor": floor,
            "no_bytecode_cache": uncached,
            "imports_ms": total_import_ms,
            "top": [i.__dict__ for i in top_offenders(imports, 25)],
        },
    )
