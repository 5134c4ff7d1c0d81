"""The webhook channel: a JSON POST signed per Standard Webhooks, so receivers verify it
with the ``standardwebhooks`` library (any language).

Headers: ``webhook-id`` (the notification's key, the same on every retry, so a receiver
de-duplicates on it), ``webhook-timestamp`` (unix seconds of this attempt) and
``webhook-signature`` (``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body`` with the
secret). The body is ``Notice.webhook_body()`` as compact JSON.

2xx is accepted. A timeout, a refused connection, 408, 429 and 5xx are retried
(NotifyRetryable); any other status is final (NotifyRejected), redirects included: they
are not followed, since the signature and the body were meant for this URL. Messages
show the URL as ``scheme://host/path``: its userinfo and query may hold tokens, and the
secret never appears anywhere.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import SecretStr

from automations import __version__
from automations.errors import NotifyRejected, NotifyRetryable
from automations.incidentio.redaction import Redactor
from automations.notify.config import shown_url
from automations.notify.notice import Notice

if TYPE_CHECKING:
    import httpx

SECRET_PREFIX = "whsec_"
# Standard Webhooks: a key of 24 to 64 bytes.
SHORTEST_KEY, LONGEST_KEY = 24, 64
RETRIED_STATUSES = frozenset({408, 429})


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` is not a Standard Webhooks secret (never quoting it), or None."""
    if not secret.startswith(SECRET_PREFIX):
        return (
            f"must start with {SECRET_PREFIX!r} followed by base64, e.g. "
            f"{SECRET_PREFIX}$(openssl rand -base64 32)"
        )
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return f"is not base64 after {SECRET_PREFIX!r}"
    if not SHORTEST_KEY <= len(key) <= LONGEST_KEY:
        return (
            f"holds a key of {len(key)} bytes; Standard Webhooks asks for {SHORTEST_KEY} to "
            f"{LONGEST_KEY} (openssl rand -base64 32 makes 32)"
        )
    return None


class WebhookSender:
    """POSTs each notice, signed, to one URL."""

    def __init__(
        self,
        channel: str,
        url: str,
        secret: SecretStr,
        *,
        timeout_seconds: float,
        clock: Callable[[], datetime],
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.channel = channel
        self.url = url
        self.where = shown_url(url)
        self._secret = secret
        self.timeout_seconds = timeout_seconds
        self.clock = clock
        self._transport = transport
        # What a message about this URL must never show: the secret, the userinfo, the query.
        self._redactor = Redactor([secret.get_secret_value(), *_url_secrets(url)])

    def __repr__(self) -> str:  # never the secret, the userinfo or the query
        return f"<WebhookSender {self.channel} -> {self.where}>"

    def signed_request(self, notice: Notice, key: str) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one attempt, signed at ``clock()``."""
        from standardwebhooks import Webhook

        if not (key.isascii() and key.isprintable()):
            raise NotifyRejected(
                f"webhook {self.channel}: the key {key!r} cannot be a webhook-id header"
            )
        body = json.dumps(notice.webhook_body(), separators=(",", ":"), ensure_ascii=False)
        # standardwebhooks reads a datetime as UTC whatever its zone: give it UTC.
        moment = self.clock().astimezone(UTC)
        signature = Webhook(self._secret.get_secret_value()).sign(key, moment, body)
        headers = {
            "content-type": "application/json",
            "user-agent": f"automations/{__version__}",
            "webhook-id": key,
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": signature,
        }
        return body.encode("utf-8"), headers

    def send(self, notice: Notice, *, key: str) -> None:
        import httpx

        content, headers = self.signed_request(notice, key)
        try:
            with httpx.Client(
                timeout=self.timeout_seconds, follow_redirects=False, transport=self._transport
            ) as http:
                response = http.post(self.url, content=content, headers=headers)
        except httpx.TimeoutException as exc:
            raise NotifyRetryable(self._say(f"timed out ({type(exc).__name__})")) from None
        except httpx.HTTPError as exc:
            raise NotifyRetryable(self._say(f"cannot connect: {exc}")) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        reply = f"HTTP {status} {response.reason_phrase}".rstrip()
        if status >= 500 or status in RETRIED_STATUSES:
            raise NotifyRetryable(self._say(f"{reply}; will retry"))
        if 300 <= status < 400:
            raise NotifyRejected(
                self._say(f"{reply}: redirects are not followed; set url to the final address")
            )
        raise NotifyRejected(self._say(f"{reply}: refused, not retried"))

    def _say(self, what: str) -> str:
        return self._redactor.clean(f"webhook {self.channel} ({self.where}): {what}")


def _url_secrets(url: str) -> list[str]:
    """The parts of a webhook URL that messages leave out (user, password, query values)."""
    from urllib.parse import parse_qsl, urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [url] if parts.query or "@" in parts.netloc else []
    if parts.query:
        found += [parts.query, *(v for _, v in parse_qsl(parts.query) if len(v) >= 4)]
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        found += [userinfo, *(p for p in userinfo.split(":") if len(p) >= 4)]
    return found
