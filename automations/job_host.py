"""What a daemon job needs from the daemon: the scheduler to add itself to, the ledger,
and whether it may still run.

The digest jobs (digest/jobs.py) and the notification job (notify/jobs.py) each run one
at a time under a lock of their own, beside the rule cycles; both stop at a stop and
when the ledger file was deleted or replaced. This is that shared part, built once by
the daemon (automations/daemon.py) and handed to each.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from automations.ledger import Ledger


@dataclass(frozen=True)
class JobHost:
    """The daemon's side of a job."""

    ledger: Ledger
    scheduler: BaseScheduler
    stopping: threading.Event
    # The daemon's check: False (and the daemon stopping) once the ledger file was deleted
    # or replaced.
    ledger_intact: Callable[[], bool]

    def may_run(self) -> bool:
        """Not after a stop, nor on a ledger that is no longer the daemon's."""
        return not self.stopping.is_set() and self.ledger_intact()
