"""How IncidentIOClient reaches the API: the connection and one call, retried and logged.

``APICaller`` owns what every endpoint shares: the checked key and base URL,
the ``httpx.Client`` (connection pool), the rate limits, the request counter,
the retry policy and the server's clock. Each call reads top to bottom like
httpx's own send chain::

    method -> _call (retries, one log line) -> _attempt (token, HTTP, counter)
           -> transport_errors (status -> exception) -> models (body -> objects)

and ``_one``, ``_all``, ``_items`` and ``_pages`` turn it into one object, a
list or a lazy listing. The typed methods are in client.py.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast
from urllib.parse import quote

import httpx
import stamina
from pydantic import BaseModel, SecretStr, ValidationError

from automations import __version__
from automations.clock import skew_problem
from automations.closing import Closing
from automations.errors import APIError, ClockSkew, ConfigError, PaginationLoop, TooManyPages
from automations.incidentio.metrics import RequestCounter
from automations.incidentio.models import (
    Malformed,
    PaginationMeta,
    envelope,
    parse_page_leniently,
    parse_without_gc,
)
from automations.incidentio.oncall import ScheduleEntriesPage, ScheduleEntry
from automations.incidentio.pagination import MAX_PAGE_SIZE, MAX_PAGES, Page, paginate
from automations.incidentio.ratelimit import TokenBucket
from automations.incidentio.redaction import Redactor, strip_userinfo
from automations.incidentio.retries import (
    MAX_RETRY_AFTER,
    CallState,
    RetryPolicy,
    RetryWaits,
    log_outcome,
)
from automations.incidentio.transport_errors import (
    error_from_response,
    error_from_transport,
    request_id,
    server_time,
    unreadable_body,
)

LOG = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")

ESCALATIONS_ROUTE = "/v2/escalations"
# POST /v2/escalations allows 60 a minute per key: stay under it as the 1000 stays under 1200.
ESCALATIONS_PER_MINUTE = 50
MAX_NAMED_MALFORMED = 5  # warnings naming one malformed incident each, per page


class APICaller(Closing):
    """The plumbing under ``IncidentIOClient``; its constructor is documented there."""

    def __init__(
        self,
        *,
        base_url: str = "https://api.incident.io",
        api_key: SecretStr | str,
        requests_per_minute: float = 1000,
        rate_limiter: TokenBucket | None = None,
        timeout: float = 30.0,
        connect_timeout: float | None = None,
        retry_attempts: int = 8,
        retry_timeout: float = 120.0,
        retry_waits: RetryWaits | None = None,
        transport: httpx.BaseTransport | None = None,
        counter: RequestCounter | None = None,
        max_clock_skew: timedelta | None = None,
        stopping: threading.Event | None = None,
        escalations_rate_limiter: TokenBucket | None = None,
    ) -> None:
        key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        secret = key.get_secret_value().strip()
        if not secret:
            raise ConfigError("the incident.io API key is empty (set INCIDENT_IO_API_KEY)")
        if not secret.isascii() or not secret.isprintable() or any(c.isspace() for c in secret):
            # h11 would refuse the header and quote the value in its error.
            raise ConfigError("the incident.io API key contains spaces or control characters")
        if not re.match(r"^https?://[^/\s]+", base_url):
            raise ConfigError(f"base_url must be an http(s) URL, got {strip_userinfo(base_url)!r}")
        if retry_attempts < 1 or retry_timeout <= 0 or timeout <= 0:
            raise ConfigError("retry_attempts must be >= 1; retry_timeout and timeout > 0")
        self.base_url = _without_userinfo(base_url.rstrip("/"))
        self._api_key = SecretStr(secret)
        self._redactor = Redactor([secret])
        self.rate_limiter = rate_limiter or TokenBucket(requests_per_minute)
        # Routes with a lower limit of their own take a token here too (each attempt).
        self.route_limiters = {
            ("POST", ESCALATIONS_ROUTE): escalations_rate_limiter
            or TokenBucket(ESCALATIONS_PER_MINUTE)
        }
        self.counter = counter or RequestCounter()
        self._retry = RetryPolicy(retry_attempts, retry_timeout, retry_waits or RetryWaits())
        self._server_time: datetime | None = None
        self.max_clock_skew = max_clock_skew  # None: follow the API's Date however far off
        self._last = threading.local()
        self.stopping = stopping
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=_BearerAuth(self._api_key),
            headers={"User-Agent": f"automations/{__version__}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=connect_timeout or timeout),
            transport=transport,
            follow_redirects=False,
        )

    def _one(
        self,
        method: str,
        route: str,
        key: str,
        model: type[M],
        path: Mapping[str, str] | None = None,
        *,
        body: dict[str, Any] | None = None,
        retry: bool = True,
    ) -> M:
        wrapper = envelope(key, model, many=False)
        parsed = self._call(
            method, route, path, None, body, wrapper.model_validate_json, retry=retry
        )
        return cast(M, getattr(parsed, key))

    def _list(
        self, route: str, key: str, model: type[M], params: list[tuple[str, str]]
    ) -> tuple[list[M], PaginationMeta | None]:
        parse = functools.partial(parse_without_gc, envelope(key, model, many=True))
        parsed = self._call("GET", route, None, params, None, parse)
        return cast(list[M], getattr(parsed, key)), parsed.pagination_meta  # type: ignore[attr-defined]

    def _all(
        self, route: str, key: str, model: type[M], params: list[tuple[str, str]] | None = None
    ) -> list[M]:
        return self._list(route, key, model, params or [])[0]

    def _pages(
        self,
        route: str,
        key: str,
        model: type[M],
        base: list[tuple[str, str]],
        *,
        lenient: bool = False,
    ) -> Iterator[Page[M]]:
        """Every page; ``lenient``: malformed items are skipped and reported, not fatal."""

        def fetch(after: str | None) -> tuple[Sequence[M], PaginationMeta | None]:
            params = base + ([("after", after)] if after else [])
            if not lenient:
                return self._list(route, key, model, params)
            parse = functools.partial(parse_page_leniently, key, model)
            page = self._call("GET", route, None, params, None, parse)
            self._report_malformed(route, page.malformed)
            return page.items, page.pagination_meta

        page_size = int(dict(base).get("page_size", MAX_PAGE_SIZE))
        clean = self._redactor.clean
        return paginate(
            fetch, _item_id, method="GET", route=route, page_size=page_size, clean=clean
        )

    def _check_server_time(self, response: httpx.Response, method: str, route: str) -> None:
        """Adopt the response's Date as the server's time, unless it is beyond max_clock_skew.

        Beyond it the answer is refused (ClockSkew, not retried): acting on a
        Date from another year would escalate everything at once.
        """
        served = server_time(response)
        if served is None:
            return
        problem = skew_problem(served, self.max_clock_skew)
        if problem is not None:
            raise ClockSkew(
                f"{method} {route}: {problem}",
                status=response.status_code,
                request_id=request_id(response.headers, None, self._redactor),
                method=method,
                route=route,
            )
        self._server_time = served

    def _report_malformed(self, route: str, malformed: Sequence[Malformed]) -> None:
        """A warning per item left out (naming it and what was wrong), counted for /metrics.

        At most MAX_NAMED_MALFORMED lines per page; one more line covers the rest.
        """
        if not malformed:
            return
        self.counter.record_malformed("GET", route, len(malformed))
        for item in malformed[:MAX_NAMED_MALFORMED]:
            what = self._redactor.clean("; ".join(item.problems))
            if item.id is not None:
                LOG.warning(
                    "GET %s: skipped malformed incident %s (%s); the rest of the page is used",
                    route,
                    self._redactor.clean(item.id, 60),
                    what,
                )
            else:
                LOG.warning(
                    "GET %s: skipped a malformed incident without an ID (item %d of the page: "
                    "%s); the rest of the page is used",
                    route,
                    item.index + 1,
                    what,
                )
        rest = malformed[MAX_NAMED_MALFORMED:]
        if rest:
            named = [self._redactor.clean(m.id, 60) for m in rest[:10] if m.id is not None]
            LOG.warning(
                "GET %s: skipped %d more malformed incidents on the same page (%s)",
                route,
                len(rest),
                ", ".join(named) + (", ..." if len(rest) > len(named) else ""),
            )

    def _schedule_entries(self, schedule_id: str, start: str, end: str) -> Iterator[ScheduleEntry]:
        """Follow the time cursor of ``GET /v2/schedule_entries``, with the listing guards."""
        route = "/v2/schedule_entries"
        parse = ScheduleEntriesPage.model_validate_json
        seen: set[tuple[Any, ...]] = set()
        cursors = {start}
        window_start = start
        for pages in range(1, MAX_PAGES + 1):
            params = [
                ("schedule_id", schedule_id),
                ("entry_window_start", window_start),
                ("entry_window_end", end),
            ]
            page = self._call("GET", route, None, params, None, parse)
            for entry in page.schedule_entries.final:
                if entry.key not in seen:
                    seen.add(entry.key)
                    yield entry
            after = page.pagination_meta.after if page.pagination_meta is not None else None
            if not after:
                return
            if after in cursors:
                raise PaginationLoop(
                    f"GET {route}: the API returned cursor {self._redactor.clean(after)!r} "
                    f"twice; stopping after {pages} pages instead of looping",
                    method="GET",
                    route=route,
                )
            cursors.add(after)
            window_start = after
        raise TooManyPages(
            f"GET {route}: still handing out new cursors after {MAX_PAGES} pages; "
            "stopping instead of paging forever",
            method="GET",
            route=route,
        )

    def _items(
        self, route: str, key: str, model: type[M], base: list[tuple[str, str]]
    ) -> Iterator[M]:
        return (item for page in self._pages(route, key, model, base) for item in page.items)

    def _call(
        self,
        method: str,
        route: str,
        path_params: Mapping[str, str] | None,
        params: list[tuple[str, str]] | None,
        body: dict[str, Any] | None,
        parse: Callable[[bytes], R],
        *,
        retry: bool = True,
    ) -> R:
        """One API call, with retries unless ``retry`` is False; logs once, however many
        attempts it took."""
        path = route.format(**{k: quote(v, safe="") for k, v in (path_params or {}).items()})
        call = CallState(method, route)
        attempt: Callable[..., R] = self._attempt
        if retry:
            attempt = stamina.retry(
                on=functools.partial(self._retry.wait, call, stop=self.stopping),
                attempts=self._retry.attempts,
                timeout=self._retry.timeout,
            )(self._attempt)
        try:
            result = attempt(call, path, params, body, parse)
        except APIError as exc:
            exc.base_url, exc.attempts = self.base_url, call.attempts
            exc.elapsed = time.monotonic() - call.started
            log_outcome(call, exc)
            raise
        log_outcome(call, None)
        return result

    def _attempt(
        self,
        call: CallState,
        path: str,
        params: list[tuple[str, str]] | None,
        body: dict[str, Any] | None,
        parse: Callable[[bytes], R],
    ) -> R:
        """One HTTP attempt: a token, the request, the count, then status and body checks."""
        call.attempts += 1
        method, route = call.method, call.route
        self.rate_limiter.acquire(self.stopping)
        route_limiter = self.route_limiters.get((method, route))
        if route_limiter is not None:
            route_limiter.acquire(self.stopping)
        started = time.monotonic()
        try:
            response = self._http.request(method, path, params=tuple(params or ()), json=body)
        except httpx.HTTPError as exc:
            call.statuses.append("error")
            self.counter.record(method, route, "error", time.monotonic() - started)
            unavailable = error_from_transport(exc, method, route, self._redactor)
            # Keep the cause for the traceback unless its text had to be redacted.
            raise unavailable from (None if self._redactor.leaks(str(exc)) else exc)
        call.statuses.append(str(response.status_code))
        self._last.request_id = request_id(response.headers, None, self._redactor)
        self.counter.record(method, route, response.status_code, time.monotonic() - started)
        self._check_server_time(response, method, route)
        if not response.is_success:
            error = error_from_response(response, method, route, self._redactor)
            if response.status_code == 429 and error.retry_after:
                # a route with its own limit pauses only itself: the rest of the key is fine
                paused = route_limiter or self.rate_limiter
                paused.defer(min(error.retry_after, MAX_RETRY_AFTER))
            raise error
        try:
            return parse(response.content)
        except ValidationError as exc:
            call.statuses[-1] += "-unreadable"
            raise unreadable_body(response, method, route, exc, self._redactor) from exc

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


class _BearerAuth(httpx.Auth):
    """Adds the key at send time; it lives nowhere else on the client."""

    def __init__(self, key: SecretStr) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(**********)"


def _without_userinfo(base_url: str) -> str:
    """The key is the only credential the API takes; user:password in the URL would only leak.

    httpx never sends it (the Bearer auth wins) but prints it in every request
    log line, so it is dropped here, once, with a warning that says why.
    """
    stripped = strip_userinfo(base_url)
    if stripped != base_url:
        LOG.warning(
            "base_url %s carried user:password, which the incident.io client never sends "
            "(the API key is its only credential); removed so it is not printed",
            stripped,
        )
    return stripped


def _item_id(item: Any) -> str:
    return str(item.id)
