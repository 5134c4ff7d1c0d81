"""One engine cycle in a process of its own, for the split-brain race:
``python -m tests.race_engine CONFIG``.

It builds the runtime as ``once`` does but takes no leader lock (two replicas that
both believe they lead), says ready and waits for a line on stdin, so that two of them start their
cycles together, runs every rule once and prints what it did as one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from automations.config import load_config
from automations.daemon import run_once
from automations.incidentio import TokenBucket
from automations.runtime import build_runtime
from automations.settings import Environment


def main(config_path: str) -> None:
    config = load_config(Path(config_path))
    runtime = build_runtime(config, Environment().api_key(), lock=False)
    runtime.client.rate_limiter = TokenBucket(rate_per_minute=600_000)
    try:
        print("ready", flush=True)
        sys.stdin.readline()
        reports = run_once(runtime)
    finally:
        runtime.close()
    outcomes = [outcome for report in reports for outcome in report.rules]
    print(
        json.dumps(
            {
                "applied": sum(len(o.applied) for o in outcomes),
                "already_done": sum(o.already_done for o in outcomes),
                "failed": sum(len(o.failed) for o in outcomes),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1])
