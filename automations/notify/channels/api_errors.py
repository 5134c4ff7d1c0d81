"""The incident.io API's errors in the outbox's terms, for the senders that call it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from automations.errors import APIError, APIRejected, NotifyRejected, NotifyRetryable


@contextmanager
def api_outcome(what: str) -> Iterator[None]:
    """APIRejected (the API said no: 4xx) is final; any other APIError (unreachable, 429,
    5xx, a clock skew) is retried by the outbox. ``what`` starts the message."""
    try:
        yield
    except APIRejected as exc:
        raise NotifyRejected(f"{what}: {exc}") from exc
    except APIError as exc:
        raise NotifyRetryable(f"{what}: {exc}") from exc
