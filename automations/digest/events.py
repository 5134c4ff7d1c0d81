"""Hooks for metrics and health: a digest was sent, or one of its stages failed.

Deliberately tiny: a ``DigestEvents`` holds two lists of callables. The
composition root builds one per runtime (``Runtime.digest_events``); the
digests service and its outbox report to it, and the daemon's metrics listen:

- ``delivery_listeners`` get the digest's name and ``"sent"`` or ``"failed"``
  for every outbox delivery attempt (a failed one, whether it will be retried
  or not, is also a ``"send"`` failure below); a test copy sent with
  ``digest send --to`` is not counted;
- ``failure_listeners`` get the digest's name and the stage that failed:
  ``"build"`` (fetching incidents and ledger events, assembling the message),
  ``"render"`` (the templates) or ``"send"`` (SMTP), once per failed attempt.

A listener that raises is logged and ignored: metrics never stop a delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

log = logging.getLogger(__name__)

Stage = Literal["build", "render", "send"]

Listener = Callable[[str, str], None]  # (digest name, outcome or stage)


class DigestEvents:
    """Who hears about digest deliveries and failures; a reload's new digests keep it."""

    def __init__(self) -> None:
        self.delivery_listeners: list[Listener] = []
        self.failure_listeners: list[Listener] = []

    def on_delivery(self, name: str, outcome: str) -> None:
        """Tell every listener; ``outcome`` is "sent" or "failed"."""
        _tell(self.delivery_listeners, name, outcome)
        if outcome == "failed":
            self.on_failure(name, "send")

    def on_failure(self, name: str, stage: Stage) -> None:
        """Tell every failure listener that ``stage`` of digest ``name`` failed once."""
        _tell(self.failure_listeners, name, stage)

    @contextmanager
    def report_failures(self, name: str, stage: Stage) -> Iterator[None]:
        """Report any exception raised inside as a failure of ``stage``, then let it go on."""
        try:
            yield
        except Exception:
            self.on_failure(name, stage)
            raise


def _tell(listeners: list[Listener], name: str, what: str) -> None:
    for listener in list(listeners):
        try:
            listener(name, what)
        except Exception:
            log.exception("digest %s: listener %r failed", name, listener)
