"""``GET /digests/<name>/changes?from=&to=&sig=``: every automated change of a window.

Where a digest's "and N more changes" leads (``[server] public_url``). Served by the
daemon's listener (automations/health_server.py) in a worker thread, from the ledger
only: no API call, so opening the page costs no quota and works while the API is down.

- The same words as the digest (digest/changes.py) and the same audience: private
  incidents only if the digest includes them, test and tutorial ones likewise, judged by
  what each claim recorded (a row from before ledger migration 0016 counts as private).
- Only links the daemon made open it: ``sig`` is an HMAC of the digest, ``from`` and ``to``
  with the ledger's link key (``ledger.meta.link_key``), so the page is no open index of
  incident names for whoever reaches the port.
- Bounded: the newest ``PAGE_ROWS`` changes, with a note when there are more, and a window
  of at most ``MAX_WINDOW``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

from automations.digest.changes import action_rows, sign
from automations.errors import LedgerError

if TYPE_CHECKING:
    from automations.digest.service import Digests

PAGE_ROWS = 5_000
MAX_WINDOW = timedelta(days=31)  # as a digest's (service.MAX_WINDOW)
TEMPLATE = "changes_page.html.j2"
HTML = "text/html; charset=utf-8"
TEXT = "text/plain; charset=utf-8"

Answer = tuple[int, str, bytes]  # as health_server.Answer


class ChangesPages:
    """The pages of every configured digest; ``digests`` gives the current ones (a reload
    replaces them)."""

    def __init__(self, digests: Callable[[], Digests | None]) -> None:
        self.digests = digests

    @staticmethod
    def wants(target: bytes) -> bool:
        """Whether a request target is one of these pages (the listener asks, then calls
        ``answer`` in a worker thread)."""
        path = target.split(b"?", 1)[0]
        return path.startswith(b"/digests/") and path.endswith(b"/changes")

    def answer(self, method: bytes, target: bytes) -> Answer:
        """(status, content type, body); HEAD is answered like GET (the listener drops the body)."""
        if method not in (b"GET", b"HEAD"):
            return 405, TEXT, b"method not allowed: GET or HEAD\n"
        raw_path, _, raw_query = target.decode("latin-1").partition("?")
        name = unquote(raw_path[len("/digests/") : -len("/changes")])
        digests = self.digests()
        if digests is None or name not in digests.jobs:
            return 404, TEXT, b"not found: no such digest\n"
        query = parse_qs(raw_query)
        start_text, end_text, signature = (query.get(k, [""])[0] for k in ("from", "to", "sig"))
        try:
            start, end = _moment(start_text, "from"), _moment(end_text, "to")
        except ValueError as exc:
            return 400, TEXT, f"bad request: {exc}\n".encode()
        if not (start < end <= start + MAX_WINDOW):
            return 400, TEXT, b"bad request: `to` must be after `from`, by at most 31 days\n"
        try:
            expected = sign(digests.ledger.meta.link_key(), name, start_text, end_text)
            if not hmac.compare_digest(expected, signature):
                return 403, TEXT, b"forbidden: open this page from the link in a digest\n"
            return 200, HTML, self.render(digests, name, start, end).encode()
        except LedgerError:
            return 503, TEXT, b"the ledger is unavailable; try again in a minute\n"

    def render(self, digests: Digests, name: str, start: datetime, end: datetime) -> str:
        """The page: every visible change of the window, newest first, at most PAGE_ROWS."""
        from automations.ledger import EventState

        job = digests.job(name)
        opts = job.options
        # Claimed up to an hour before it finished (a slow re-read, reconcile after a restart).
        events = digests.ledger.events.history(
            since=start - timedelta(hours=1),
            states=[EventState.APPLIED, EventState.RECONCILED],
        )
        rows = action_rows(
            events,
            {},
            digests.catalog,
            start,
            end,
            include_private=opts.include_private,
            include_test=opts.include_test,
        )
        template = job.renderer.env.get_template(TEMPLATE)
        return template.render(
            name=name,
            start=start,
            end=end,
            rows=rows[:PAGE_ROWS],
            total=len(rows),
            include_private=opts.include_private,
            include_test=opts.include_test,
            timezone=str(opts.timezone),
        )


def _moment(text: str, key: str) -> datetime:
    """An RFC 3339 time with its offset (``2026-11-23T08:00:00Z``)."""
    if not text:
        raise ValueError(f"`{key}` is missing: an RFC 3339 time like 2026-11-23T08:00:00Z")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"`{key}` is not an RFC 3339 time like 2026-11-23T08:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"`{key}` has no offset: add Z or +01:00")
    return moment
