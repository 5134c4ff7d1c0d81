"""Cursor pagination that trusts the API's ``pagination_meta`` only as far as it must.

The next cursor is ``pagination_meta.after``; when a response has no meta at
all, the last item's ID (what incident.io's own singer tap does). Paging stops
on an empty page or a missing/empty cursor, and a cursor seen before raises
instead of looping forever (a server that ignores ``after`` returns page one
again and again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

from automations.errors import APIError
from automations.incidentio.models import Incident, PaginationMeta

T = TypeVar("T")

MAX_PAGE_SIZE = 250  # the documented maximum; the schema's 500 is not honoured (section 5)


class PaginationLoop(APIError):
    """The API handed back a cursor it had already given: following it would never end."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page as returned, and the cursor for the next one (None: this was the last)."""

    items: Sequence[T]
    after: str | None
    total_record_count: int | None = None


class IncidentPage(NamedTuple):
    incidents: list[Incident]
    after: str | None
    total_record_count: int | None


def check_page_size(page_size: int, maximum: int = MAX_PAGE_SIZE) -> int:
    if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
        raise ValueError(f"page_size must be a positive integer, got {page_size!r}")
    if page_size > maximum:
        raise ValueError(f"page_size {page_size} is over the API's maximum of {maximum}")
    return page_size


def next_cursor(
    items: Sequence[T], meta: PaginationMeta | None, item_id: Callable[[T], str]
) -> str | None:
    if not items:
        return None
    if meta is None:
        return item_id(items[-1])
    return meta.after or None


def paginate(
    fetch: Callable[[str | None], tuple[Sequence[T], PaginationMeta | None]],
    item_id: Callable[[T], str],
    *,
    method: str,
    route: str,
) -> Iterator[Page[T]]:
    """Yield pages lazily; ``fetch(after)`` performs one (retried) request."""
    after: str | None = None
    seen: set[str] = set()
    while True:
        items, meta = fetch(after)
        cursor = next_cursor(items, meta, item_id)
        total = meta.total_record_count if meta is not None else None
        yield Page(items=items, after=cursor, total_record_count=total)
        if cursor is None:
            return
        if cursor in seen:
            raise PaginationLoop(
                f"{method} {route}: the API returned cursor {cursor!r} twice; "
                f"stopping after {len(seen) + 1} pages instead of looping",
                method=method,
                route=route,
            )
        seen.add(cursor)
        after = cursor
