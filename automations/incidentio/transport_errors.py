"""From HTTP outcomes to the product's exceptions.

Decides what is transient (APIUnavailable: retried) and what is permanent
(APIRejected: never retried), reads the API's error envelope
(``{type, status, request_id, errors[{code, message, source{field, pointer}}]}``)
and the ``Retry-After`` header in both of its forms.

Nothing here keeps the httpx request: it carries the Authorization header, and
exceptions end up in logs and in the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic import ValidationError

from automations.clock import host_now
from automations.errors import (
    APIAccessDenied,
    APIError,
    APIErrorDetail,
    APIRejected,
    APIUnavailable,
)

# 408 and 425 say "try again"; 429 is the rate limit; 5xx is the server's fault.
RETRYABLE_STATUSES = frozenset({408, 425, 429})
ACCESS_STATUSES = frozenset({401, 403})  # the key: wrong, revoked, or lacking a permission
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid")


def parse_http_date(value: str | None) -> datetime | None:
    """An RFC 7231 HTTP-date (``Date``, ``Retry-After``) as an aware datetime, or None."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP-date.

    The API has sent both over time (section 7). A date is measured against
    ``now``, which should be the server's own ``Date`` header so clock skew
    between us and the server does not matter. A date in the past means 0.
    RFC 3339 (the body's ``rate_limit.retry_after``) is accepted too.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        when = parse_http_date(text) or _parse_rfc3339(text)
        if when is None:
            return None
        return max(0.0, (when - now).total_seconds())
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN or infinite
        return None
    return max(0.0, seconds)


def _parse_rfc3339(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def server_time(response: httpx.Response) -> datetime | None:
    return parse_http_date(response.headers.get("date"))


def request_id(headers: httpx.Headers, body: dict[str, Any] | None = None) -> str | None:
    """The request ID from the envelope, else from a request-id header."""
    if body and isinstance(body.get("request_id"), str) and body["request_id"]:
        return str(body["request_id"])
    for name in REQUEST_ID_HEADERS:
        if headers.get(name):
            return headers[name]
    return None


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def error_from_response(response: httpx.Response, method: str, route: str) -> APIError:
    """Map a non-2xx response to APIUnavailable or APIRejected, keeping the envelope."""
    status = response.status_code
    body = _json_object(response)
    details = _details(body) if body is not None else []
    error_type = body.get("type") if body is not None else None
    message = f"{method} {route} failed: HTTP {status}"
    if body is None and response.content:
        content_type = response.headers.get("content-type", "unknown type").split(";")[0]
        message += f" ({content_type} body, not the API's error envelope)"
    elif 300 <= status < 400:
        message += f" (redirect to {response.headers.get('location', '?')}: check base_url)"
    now = server_time(response) or host_now()
    retry_after = parse_retry_after(response.headers.get("retry-after"), now)
    if retry_after is None and body is not None and isinstance(body.get("rate_limit"), dict):
        raw = body["rate_limit"].get("retry_after")
        retry_after = parse_retry_after(raw if isinstance(raw, str) else None, now)
    cls: type[APIError] = APIRejected
    if is_retryable_status(status):
        cls = APIUnavailable
    elif status in ACCESS_STATUSES:
        cls = APIAccessDenied
    return cls(
        message,
        status=status,
        type=error_type if isinstance(error_type, str) else None,
        request_id=request_id(response.headers, body),
        errors=details,
        retry_after=retry_after,
        method=method,
        route=route,
    )


def error_from_transport(
    exc: httpx.HTTPError, method: str, route: str, redact: Callable[[str], str] = str
) -> APIUnavailable:
    """A timeout, connection or protocol failure: no usable response, so retry.

    Only the exception's class and (redacted) text are kept, never its request;
    callers chain it with ``from exc`` for the traceback.
    """
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    text = redact(str(exc)) or type(exc).__name__
    return APIUnavailable(
        f"{method} {route} {kind}: {type(exc).__name__}: {text}", method=method, route=route
    )


def unreadable_body(
    response: httpx.Response, method: str, route: str, error: ValidationError
) -> APIUnavailable:
    """A 2xx whose body is not the expected JSON (an HTML page from a proxy, a cut body).

    Treated as transient: it is what a failing load balancer or a truncated
    response looks like. The message names the first problems, not the body.
    """
    problems = [
        f"{'.'.join(str(p) for p in e['loc']) or '<body>'}: {e['msg']}"
        for e in error.errors(include_input=False, include_url=False)[:3]
    ]
    content_type = response.headers.get("content-type", "unknown type").split(";")[0]
    return APIUnavailable(
        f"{method} {route}: unreadable {content_type} response ({'; '.join(problems)})",
        status=response.status_code,
        request_id=request_id(response.headers),
        method=method,
        route=route,
    )


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _details(body: dict[str, Any]) -> list[APIErrorDetail]:
    raw = body.get("errors")
    if not isinstance(raw, list):
        return []
    details = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        source = item.get("source")
        if not isinstance(source, dict):
            source = {}
        metadata = item.get("metadata")
        details.append(
            APIErrorDetail(
                code=str(item.get("code") or ""),
                message=str(item.get("message") or ""),
                field=_str_or_none(source.get("field")),
                pointer=_str_or_none(source.get("pointer")),
                metadata=metadata if isinstance(metadata, dict) else None,
            )
        )
    return details


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
