"""Named crash points for tests that must kill the process at an exact step.

``AUTOMATIONS_FAILPOINTS=after_edit`` makes the process exit abruptly (as
``kill -9`` would, no cleanup) at that point. In-process tests ``arm`` a point
instead, which raises ``SimulatedCrash`` (a BaseException, so no ``except
Exception`` in the engine can swallow it). Unset in production: the check is
an empty-dict test and one environment lookup.

Points, in the order an action meets them: ``after_claim``, ``after_reread``,
``after_edit``, ``after_confirm``; and ``reconcile_after_read`` at start-up. The
outboxes have their own: ``after_smtp`` (a digest accepted, not yet recorded) and
``after_notify_send`` (a notification accepted, not yet recorded); the webhook worker
``before_webhook_processing`` (deliveries recorded and answered, not processed).
"""

from __future__ import annotations

import os

from automations.errors import SimulatedCrash

ENV = "AUTOMATIONS_FAILPOINTS"
POINTS = ("after_claim", "after_reread", "after_edit", "after_confirm", "reconcile_after_read")
OUTBOX_POINTS = ("after_smtp", "after_notify_send")
# A webhook delivery recorded (and answered), its processing about to start.
WEBHOOK_POINTS = ("before_webhook_processing",)

_armed: dict[str, int] = {}  # point -> passes left before it fires (in-process tests)


def arm(name: str, passes: int = 0) -> None:
    """Fire at ``name`` after it has been passed ``passes`` times."""
    if name not in (*POINTS, *OUTBOX_POINTS, *WEBHOOK_POINTS):
        known = ", ".join((*POINTS, *OUTBOX_POINTS, *WEBHOOK_POINTS))
        raise ValueError(f"unknown failpoint {name!r}; known: {known}")
    _armed[name] = passes


def disarm() -> None:
    _armed.clear()


def hit(name: str) -> None:
    """Crash here if ``name`` is armed (in-process), or exit 137 if armed in the environment."""
    if _armed and name in _armed:
        if _armed[name] == 0:
            del _armed[name]
            raise SimulatedCrash(name)
        _armed[name] -= 1
    armed = os.environ.get(ENV, "")
    if armed and name in armed.split(","):
        os._exit(137)
