"""Cursor pagination that trusts the API's ``pagination_meta`` only as far as it must.

The next cursor is ``pagination_meta.after``; when a response has no meta at
all, the last item's ID (what incident.io's own singer tap does). Paging stops
on an empty page or a missing/empty cursor. Two guards keep a broken or
hostile server from making a listing endless:

- a cursor seen before raises ``PaginationLoop`` (a server that ignores
  ``after`` and hands back the same cursor);
- a page cap raises ``TooManyPages`` (a server that hands out a fresh cursor
  on every page). The cap is derived from the first page's
  ``total_record_count`` when the API sends one (``ceil(total / page_size)``
  plus a margin for records that join the filter while we page), else
  ``MAX_PAGES``; never more than ``MAX_PAGES``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

from automations.errors import PaginationLoop, TooManyPages
from automations.incidentio.models import Incident, PaginationMeta

LOG = logging.getLogger(__name__)

T = TypeVar("T")

MAX_PAGE_SIZE = 250  # the documented maximum; the schema's 500 is not honoured (section 5)
# The most pages one listing may take when the API gives no total: 250,000 incidents at
# 250 a page, already a minute of the rate limit (1000/min). A real list never gets close.
MAX_PAGES = 1_000
PAGE_MARGIN = 2  # pages allowed beyond the total: an empty last page, a record that joined


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


def page_cap(total: int | None, page_size: int) -> int:
    """How many pages a listing may take: from the API's count when it gives one."""
    if total is None or total < 0:
        return MAX_PAGES
    expected = math.ceil(total / page_size)
    return min(MAX_PAGES, expected + max(PAGE_MARGIN, expected // 10))


def paginate(
    fetch: Callable[[str | None], tuple[Sequence[T], PaginationMeta | None]],
    item_id: Callable[[T], str],
    *,
    method: str,
    route: str,
    page_size: int,
    clean: Callable[[str], str] = str,
) -> Iterator[Page[T]]:
    """Yield pages lazily; ``fetch(after)`` performs one (retried) request.

    ``clean`` makes a server-chosen cursor safe to quote in an error (redaction.py).
    """
    after: str | None = None
    seen: set[str] = set()
    cap: int | None = None
    total: int | None = None
    pages = 0
    while True:
        items, meta = fetch(after)
        pages += 1
        cursor = next_cursor(items, meta, item_id)
        page_total = meta.total_record_count if meta is not None else None
        if cap is None:
            total, cap = page_total, page_cap(page_total, page_size)
        yield Page(items=items, after=cursor, total_record_count=page_total)
        if cursor is None:
            return
        if cursor in seen:
            raise PaginationLoop(
                f"{method} {route}: the API returned cursor {clean(cursor)!r} twice; "
                f"stopping after {pages} pages instead of looping",
                method=method,
                route=route,
            )
        if pages >= cap:
            raise TooManyPages(
                _too_many(method, route, pages, total, page_size), method=method, route=route
            )
        seen.add(cursor)
        after = cursor


def _too_many(method: str, route: str, pages: int, total: int | None, page_size: int) -> str:
    if total is None:
        bound = "the most one listing may take without a record count"
    else:
        bound = f"the API counted {total} records, {page_size} a page"
    return (
        f"{method} {route}: still handing out new cursors after {pages} pages ({bound}); "
        "stopping instead of paging forever"
    )


def unique_incidents(pages: Iterator[Page[Incident]], where: str) -> Iterator[IncidentPage]:
    """Each incident ID at most once per listing.

    A server whose cursor slips serves some incidents twice; each copy would be
    planned (and counted against the safety brake) again. One warning per
    listing says how many were repeated, once the listing is complete.
    """
    seen: set[str] = set()
    repeated = 0
    for page in pages:
        fresh = []
        for incident in page.items:
            if incident.id in seen:
                repeated += 1
                continue
            seen.add(incident.id)
            fresh.append(incident)
        yield IncidentPage(fresh, page.after, page.total_record_count)
    if repeated:
        LOG.warning(
            "%s: the API listed %d incidents more than once in one listing; each was used once",
            where,
            repeated,
        )
