"""From HTTP outcomes to the product's exceptions.

Decides what is transient (APIUnavailable: retried) and what is permanent
(APIRejected: never retried), reads the API's error envelope
(``{type, status, request_id, errors[{code, message, source{field, pointer}}]}``)
and the ``Retry-After`` header in both of its forms.

Nothing here keeps the httpx request: it carries the Authorization header, and
exceptions end up in logs, the ledger, ``history`` and ``/healthz``. For the
same reason every string taken from a response or a transport error passes
through a ``Redactor`` (redaction.py) before an exception carries it: a
gateway that echoes the request would otherwise echo the key.
"""

from __future__ import annotations

import json
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
from automations.incidentio.redaction import MAX_DETAILS, Redactor, strip_userinfo

# 408 and 425 say "try again"; 429 is the rate limit; 5xx is the server's fault.
RETRYABLE_STATUSES = frozenset({408, 425, 429})
ACCESS_STATUSES = frozenset({401, 403})  # the key: wrong, revoked, or lacking a permission
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid")
MAX_REQUEST_ID = 100
MAX_METADATA = 1_000  # characters of an error's metadata, as JSON, kept at most
_NO_SECRETS = Redactor()  # patterns only, for callers that hold no key


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


def request_id(
    headers: httpx.Headers, body: dict[str, Any] | None = None, redactor: Redactor = _NO_SECRETS
) -> str | None:
    """The request ID from the envelope, else from a request-id header (cleaned, short)."""
    found: str | None
    if body and isinstance(body.get("request_id"), str) and body["request_id"]:
        found = str(body["request_id"])
    else:
        found = next((headers[name] for name in REQUEST_ID_HEADERS if headers.get(name)), None)
    return redactor.clean(found, MAX_REQUEST_ID) if found is not None else None


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def error_from_response(
    response: httpx.Response, method: str, route: str, redactor: Redactor = _NO_SECRETS
) -> APIError:
    """Map a non-2xx response to APIUnavailable or APIRejected, keeping the envelope.

    Every piece of upstream text is cleaned and capped; a non-JSON page keeps a
    short excerpt of its words (which proxy said what), never the page.
    """
    status = response.status_code
    body = _json_object(response)
    details = _details(body, redactor) if body is not None else []
    error_type = body.get("type") if body is not None else None
    message = f"{method} {route} failed: HTTP {status}"
    if body is None and response.content:
        content_type = response.headers.get("content-type", "unknown type").split(";")[0]
        excerpt = redactor.page_excerpt(response.content)
        message += f" ({redactor.clean(content_type, 60)} body, not the API's error envelope"
        message += f': "{excerpt}")' if excerpt else ")"
    elif 300 <= status < 400:
        location = redactor.clean(strip_userinfo(response.headers.get("location", "?")))
        message += f" (redirect to {location}: check base_url)"
    if body is not None:
        # Not in the API's envelope, but what gateways and proxies send ({"message": ...}).
        for key in ("message", "error"):
            if isinstance(body.get(key), str) and body[key].strip():
                message += f": {redactor.clean(body[key])}"
                break
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
        type=redactor.clean(error_type, 60) if isinstance(error_type, str) else None,
        request_id=request_id(response.headers, body, redactor),
        errors=details,
        retry_after=retry_after,
        method=method,
        route=route,
    )


def error_from_transport(
    exc: httpx.HTTPError, method: str, route: str, redactor: Redactor = _NO_SECRETS
) -> APIUnavailable:
    """A timeout, connection or protocol failure: no usable response, so retry.

    Only the exception's class and (redacted) text are kept, never its request;
    callers chain it with ``from exc`` for the traceback.
    """
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    text = redactor.clean(str(exc)) or type(exc).__name__
    return APIUnavailable(
        f"{method} {route} {kind}: {type(exc).__name__}: {text}", method=method, route=route
    )


def unreadable_body(
    response: httpx.Response,
    method: str,
    route: str,
    error: ValidationError,
    redactor: Redactor = _NO_SECRETS,
) -> APIUnavailable:
    """A 2xx whose body is not the expected JSON (an HTML page from a proxy, a cut body).

    Treated as transient: it is what a failing load balancer or a truncated
    response looks like. The message names the first problems, not the body.
    """
    problems = [
        redactor.clean(f"{'.'.join(str(p) for p in e['loc']) or '<body>'}: {e['msg']}")
        for e in error.errors(include_input=False, include_url=False)[:3]
    ]
    content_type = redactor.clean(
        response.headers.get("content-type", "unknown type").split(";")[0], 60
    )
    return APIUnavailable(
        f"{method} {route}: unreadable {content_type} response ({'; '.join(problems)})",
        status=response.status_code,
        request_id=request_id(response.headers, None, redactor),
        method=method,
        route=route,
    )


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _details(body: dict[str, Any], redactor: Redactor) -> list[APIErrorDetail]:
    """The envelope's errors[], cleaned; at most MAX_DETAILS, then one saying how many more."""
    raw = body.get("errors")
    if not isinstance(raw, list):
        return []
    items = [item for item in raw if isinstance(item, dict)]
    details = []
    for item in items[:MAX_DETAILS]:
        source = item.get("source")
        if not isinstance(source, dict):
            source = {}
        details.append(
            APIErrorDetail(
                code=redactor.clean(str(item.get("code") or ""), 60),
                message=redactor.clean(str(item.get("message") or "")),
                field=_clean_or_none(source.get("field"), redactor),
                pointer=_clean_or_none(source.get("pointer"), redactor),
                metadata=_metadata(item.get("metadata"), redactor),
            )
        )
    if len(items) > MAX_DETAILS:
        details.append(APIErrorDetail(message=f"... and {len(items) - MAX_DETAILS} more errors"))
    return details


def _metadata(value: Any, redactor: Redactor) -> dict[str, Any] | None:
    """Kept only when small and free of anything credential-shaped (nothing reads it today)."""
    if not isinstance(value, dict):
        return None
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value if len(text) <= MAX_METADATA and not redactor.leaks(text) else None


def _clean_or_none(value: Any, redactor: Redactor) -> str | None:
    return redactor.clean(value, 100) if isinstance(value, str) and value else None
