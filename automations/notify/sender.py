"""The two seams between channels and the outbox: what a sender does, what a channel allows.

A channel type (email, webhook, apprise, escalation, and the incident's own timeline)
is a ``Sender``; the outbox only needs the ``ChannelPolicy`` of each channel to decide
whether, when and how long to try.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from automations.notify.notice import Notice

# The incident's own timeline (a rule's ``announce``): POST /v2/incident_updates. The '@'
# keeps it apart from user channel names, which are lowercase letters, digits, - and _.
INCIDENT_UPDATE_CHANNEL = "@incident"


class Sender(Protocol):
    """Delivers one notice to one channel.

    ``key`` is stable across retries of one notification (the webhook-id, the
    idempotency key, the Message-ID's seed). Raises NotifyRetryable for a transient
    failure and NotifyRejected for a final one (automations/errors.py); returning
    means the receiver accepted it.
    """

    def send(self, notice: Notice, *, key: str) -> None: ...


class ChannelPolicy(Protocol):
    """What the outbox asks of a channel's options."""

    @property
    def include_private(self) -> bool: ...

    @property
    def max_per_hour(self) -> int | None: ...

    @property
    def expire_after(self) -> timedelta: ...
