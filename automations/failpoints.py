"""Named crash points for tests that must kill the process at an exact step.

``AUTOMATIONS_FAILPOINTS=after_edit`` makes the process exit abruptly (as
``kill -9`` would, no cleanup) at that point: the composition root reads it
once (``Failpoints.from_environment``, in ``build_runtime``) and hands the
object to the parts that have crash points. In-process tests build their own
``Failpoints``, pass it in and ``arm`` a point instead, which raises
``SimulatedCrash`` (a BaseException, so no ``except Exception`` in the engine
can swallow it). Unset in production: each check is two empty-set tests.

Points, in the order an action meets them: ``after_claim``, ``after_reread``,
``after_edit``, ``after_confirm``; and ``reconcile_after_read`` at start-up. The
outboxes have their own: ``after_smtp`` (a digest accepted, not yet recorded) and
``after_notify_send`` (a notification accepted, not yet recorded); the webhook worker
``before_webhook_processing`` (deliveries recorded and answered, not processed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from automations.errors import SimulatedCrash

ENV = "AUTOMATIONS_FAILPOINTS"
POINTS = ("after_claim", "after_reread", "after_edit", "after_confirm", "reconcile_after_read")
OUTBOX_POINTS = ("after_smtp", "after_notify_send")
# A webhook delivery recorded (and answered), its processing about to start.
WEBHOOK_POINTS = ("before_webhook_processing",)


class Failpoints:
    """The crash points of one process (or one in-process test); none armed by default."""

    def __init__(self, exit_at: Iterable[str] = ()) -> None:
        self._exit_at = frozenset(exit_at)  # the process exits 137 at these
        self._armed: dict[str, int] = {}  # point -> passes left before it fires (in-process)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Failpoints:
        """The points named (comma-separated) in ``AUTOMATIONS_FAILPOINTS``; usually none."""
        return cls(name for name in environ.get(ENV, "").split(",") if name)

    def arm(self, name: str, passes: int = 0) -> None:
        """Fire at ``name`` after it has been passed ``passes`` times."""
        if name not in (*POINTS, *OUTBOX_POINTS, *WEBHOOK_POINTS):
            known = ", ".join((*POINTS, *OUTBOX_POINTS, *WEBHOOK_POINTS))
            raise ValueError(f"unknown failpoint {name!r}; known: {known}")
        self._armed[name] = passes

    def disarm(self) -> None:
        self._armed.clear()

    def hit(self, name: str) -> None:
        """Crash here if ``name`` is armed (in-process), or exit 137 if named in the environment."""
        if self._armed and name in self._armed:
            if self._armed[name] == 0:
                del self._armed[name]
                raise SimulatedCrash(name)
            self._armed[name] -= 1
        if name in self._exit_at:
            os._exit(137)
