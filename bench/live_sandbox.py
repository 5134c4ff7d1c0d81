"""``python -m bench.live_sandbox --live N``: the sandbox on a free port with N live incidents.

Prints its base URL on one line, then serves until its stdin is closed (the
benchmark owning it exits or closes the pipe), so it never outlives the run.
"""

from __future__ import annotations

import argparse
import sys

from automations.sandbox import SandboxConfig, SandboxThread
from bench.common import UNLIMITED_PER_MINUTE, load_live


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.live_sandbox")
    parser.add_argument("--live", type=int, required=True, help="live incidents to hold")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    config = SandboxConfig(incidents=0, rate_limit_per_minute=UNLIMITED_PER_MINUTE)
    server = SandboxThread(config).start()
    try:
        load_live(server.app.state.sandbox, args.live, seed=args.seed)
        print(server.base_url, flush=True)
        sys.stdin.read()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
