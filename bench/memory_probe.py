"""``python -m bench.memory_probe --config PATH --mode MODE``: one cycle's worth of work, for RSS.

Run as a child of the memory benchmark, which reads its peak RSS. Modes:

- ``engine``: the daemon's ``run_once`` (what ``automations once`` does, without the CLI);
- ``streaming``: the proposal in docs/benchmarks.md: each page is evaluated by
  the rules sharing its query, then dropped, so only one page is ever held;
- ``shared``: the engine's poll, but equal catalog sub-objects embedded in each
  incident (status, severity, roles, fields, users, ...) are shared, not copied.

Prints one JSON line: wall and CPU seconds, incidents seen, actions planned.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from automations.daemon import run_once
from automations.incidentio import Incident, IncidentFilter, IncidentTimestampValue
from automations.incidentio.models import TimestampValue
from automations.rules.base import AnyRule
from automations.runtime import Runtime
from bench.common import quiet_logs, runtime_for

MODES = ("engine", "streaming", "shared")
UNIQUE = (TimestampValue, IncidentTimestampValue)  # hold a per-incident time: never shared


def _groups(runtime: Runtime) -> dict[str, tuple[IncidentFilter, list[AnyRule]]]:
    groups: dict[str, tuple[IncidentFilter, list[AnyRule]]] = {}
    for rule in runtime.rules:
        query = rule.query()
        groups.setdefault(query.key(), (query, []))[1].append(rule)
    return groups


def streaming(runtime: Runtime) -> tuple[int, int]:
    now = runtime.engine.clock()
    seen = planned = 0
    for query, rules in _groups(runtime).values():
        for page in runtime.client.iter_incident_pages(query):
            seen += len(page.incidents)
            for rule in rules:
                planned += len(rule.evaluate(page.incidents, now, runtime.catalog, None))
    return seen, planned


def share(model: BaseModel, cache: dict[Any, Any]) -> None:
    """Replace each equal, hashable sub-model of ``model`` with one shared instance."""
    fields = model.__dict__
    for key, value in fields.items():
        if isinstance(value, BaseModel):
            fields[key] = _canonical(value, cache)
        elif isinstance(value, tuple) and value and isinstance(value[0], BaseModel):
            fields[key] = tuple(_canonical(item, cache) for item in value)


def _canonical(model: BaseModel, cache: dict[Any, Any]) -> Any:
    share(model, cache)
    if isinstance(model, UNIQUE):
        return model
    try:
        return cache.setdefault(model, model)
    except TypeError:  # not hashable (a dict field): keep this copy
        return model


def shared(runtime: Runtime) -> tuple[int, int]:
    now = runtime.engine.clock()
    cache: dict[Any, Any] = {}
    seen = planned = 0
    for query, rules in _groups(runtime).values():
        incidents: list[Incident] = []
        for incident in runtime.client.iter_incidents(query):
            share(incident, cache)
            incidents.append(incident)
        seen += len(incidents)
        for rule in rules:
            planned += len(rule.evaluate(incidents, now, runtime.catalog, None))
    return seen, planned


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_probe")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    args = parser.parse_args(argv)
    with quiet_logs(), runtime_for(args.config) as runtime:
        wall, cpu = time.perf_counter(), time.process_time()
        if args.mode == "engine":
            reports = run_once(runtime)
            seen, planned = sum(r.incidents_seen for r in reports), sum(r.planned for r in reports)
        elif args.mode == "streaming":
            seen, planned = streaming(runtime)
        else:
            seen, planned = shared(runtime)
        result = {
            "wall": time.perf_counter() - wall,
            "cpu": time.process_time() - cpu,
            "incidents": seen,
            "planned": planned,
        }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
