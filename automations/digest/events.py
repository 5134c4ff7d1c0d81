"""A hook for metrics: who wants to know when a digest was sent, or failed to be.

Deliberately tiny: append a callable to ``DELIVERY_LISTENERS`` and it is
called with the digest's name and ``"sent"`` or ``"failed"`` (each failed
attempt, whether it will be retried or not) for every outbox delivery; a test
copy sent with ``digest send --to`` is not counted. A listener that raises is logged
and ignored: metrics never stop a delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("automations.digest")

DeliveryListener = Callable[[str, str], None]
DELIVERY_LISTENERS: list[DeliveryListener] = []


def on_delivery(name: str, outcome: str) -> None:
    """Tell every listener; ``outcome`` is "sent" or "failed"."""
    for listener in list(DELIVERY_LISTENERS):
        try:
            listener(name, outcome)
        except Exception:
            log.exception("digest %s: delivery listener %r failed", name, listener)
