"""What a claim says to announce, and the outbox rows it becomes once its action is applied.

The engine stores a rule's ``NotifySpec`` on the claim (channel names and the
rendered ``announce`` message), before the side effect; when the action is
recorded as applied (or reconciled), ``notices_for`` turns it into one
``QueuedNotice`` per channel, inserted in the same ledger transaction. The
channels' policies are read at that moment, so a private incident never gets
a row for a channel that does not allow it, not even a queued one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta

from automations.notify.notice import Notice
from automations.notify.sender import INCIDENT_UPDATE_CHANNEL, ChannelPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NotifySpec:
    """A rule's notify list and its rendered announce message; empty means "tell no one"."""

    channels: tuple[str, ...] = ()
    announce: str | None = None

    def __bool__(self) -> bool:
        return bool(self.channels) or self.announce is not None

    def to_json(self) -> str:
        return json.dumps(
            {"channels": list(self.channels), "announce": self.announce}, ensure_ascii=False
        )

    @classmethod
    def from_json(cls, text: str) -> NotifySpec:
        """ValueError or TypeError when ``text`` is not a spec this version wrote."""
        record = json.loads(text)
        if not isinstance(record, dict):
            raise TypeError(f"notify is JSON {type(record).__name__}, not an object")
        channels, announce = record.get("channels", []), record.get("announce")
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise TypeError(f"notify.channels is {channels!r}, not a list of names")
        if announce is not None and not isinstance(announce, str):
            raise TypeError(f"notify.announce is {announce!r}, not text")
        return cls(tuple(channels), announce)

    @classmethod
    def from_column(cls, text: str | None) -> NotifySpec:
        """The ``events.notify`` column: NULL is the empty spec."""
        return cls() if text is None else cls.from_json(text)


@dataclass(frozen=True)
class QueuedNotice:
    """One outbox row to be: this notice, for this channel."""

    channel: str
    notice: Notice


@dataclass(frozen=True)
class Policy:
    """A plain ChannelPolicy: the incident timeline's, and one for tests and tools."""

    include_private: bool = False
    max_per_hour: int | None = None
    expire_after: timedelta = timedelta(hours=24)


# The incident's own timeline: it may name a private incident (it is that incident's),
# is never rate-limited (one update per applied action), and an update a day late still
# says what happened. Used when the policies given to the outbox have no entry for it.
INCIDENT_UPDATE_POLICY = Policy(include_private=True)


def notices_for(
    spec: NotifySpec, notice: Notice, policies: Mapping[str, ChannelPolicy]
) -> list[QueuedNotice]:
    """The rows to queue for ``notice``: one per listed channel that may see it, one for the
    incident's timeline when the spec announces.

    A private incident gets no row for a channel whose ``include_private`` is false. A
    channel missing from ``policies`` (the config changed since the claim) is dropped,
    with one warning naming every such channel of this notice.
    """
    queued: list[QueuedNotice] = []
    missing: list[str] = []
    for channel in dict.fromkeys(spec.channels):
        policy = policies.get(channel)
        if policy is None:
            missing.append(channel)
        elif policy.include_private or not notice.private:
            queued.append(QueuedNotice(channel, notice))
    if missing:
        log.warning(
            "%s: not announced to %s: no such channel in the config any more (it changed "
            "since the action was claimed)",
            notice.event_key,
            ", ".join(missing),
        )
    if spec.announce is not None:
        update = replace(notice, details={**notice.details, "message": spec.announce})
        queued.append(QueuedNotice(INCIDENT_UPDATE_CHANNEL, update))
    return queued
