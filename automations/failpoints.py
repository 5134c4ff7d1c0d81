"""Named crash points for tests that must kill the process at an exact step.

``AUTOMATIONS_FAILPOINTS=after_edit`` makes the process exit abruptly (as
``kill -9`` would, no cleanup) right after the edit is sent and before the
ledger confirms it. Unset in production: the check is one dict lookup.
"""

from __future__ import annotations

import os

ENV = "AUTOMATIONS_FAILPOINTS"


def hit(name: str) -> None:
    """Exit with 137 if ``name`` is armed in the environment."""
    armed = os.environ.get(ENV, "")
    if armed and name in armed.split(","):
        os._exit(137)
