"""Upstream text made safe to keep: no credentials, one line, bounded length.

Whatever answers at ``base_url`` (the API, a gateway, a debugging proxy) may
echo the request back, Authorization header included, and every exception
ends up in logs, the ledger, ``history`` and ``/healthz``. So each string
taken from a response (error messages, codes, request IDs, HTML pages,
``Location``) and from a transport error passes through ``Redactor.clean``
before an exception carries it.

Redaction runs before the cap, so a cut can never leave half a key behind.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from urllib.parse import quote, urlsplit, urlunsplit

REDACTED = "[redacted]"
MAX_TEXT = 300  # characters kept of one upstream string
MAX_DETAILS = 5  # errors[] entries kept in an exception

# A credential after an auth scheme: "Bearer abc...", "Basic dXNl..." (short words are prose).
_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]{8,}=*")
# A header or parameter that holds a credential, however quoted: Authorization: x,
# "authorization": "Bearer x", api_key=x, ?token=x.
_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization|x-api-key|api[_-]?key|access[_-]?token|token|password)"
    r"([\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|basic|digest)\s+)?+(?!\[redacted\])"
    r"[^\s\"'<>,;&{}\[\]]+"
)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_SPACES = re.compile(r"\s{2,}")
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)


class Redactor:
    """Removes the given secrets (and anything shaped like a credential) from text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if secret:
                variants |= {secret, html.escape(secret), quote(secret, safe="")}
        # Longest first, so a variant containing another is replaced whole.
        self._secrets = sorted(variants, key=len, reverse=True)

    def clean(self, text: str, limit: int = MAX_TEXT) -> str:
        """``text`` without credentials, on one line, at most ``limit`` characters (plus a note)."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = _HEADER.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)
        text = _SCHEME.sub(lambda m: f"{m[1]} {REDACTED}", text)
        text = _USERINFO.sub(r"\1", text)
        text = _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()
        if len(text) > limit:
            text = f"{text[:limit]}... ({len(text) - limit} more characters)"
        return text

    def leaks(self, text: str) -> bool:
        """Whether ``text`` holds one of the secrets or something shaped like a credential."""
        return any(s in text for s in self._secrets) or any(
            p.search(text) for p in (_HEADER, _SCHEME, _USERINFO)
        )

    def page_excerpt(self, body: bytes, limit: int = 120) -> str:
        """The words of a non-JSON error page (an HTML 502 from a proxy), cleaned and short."""
        text = body[: limit * 50].decode("utf-8", "replace")
        return self.clean(html.unescape(_TAGS.sub(" ", text)), limit)


def strip_userinfo(url: str) -> str:
    """``https://user:pass@host/x`` -> ``https://host/x``; other URLs unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(r"\1", url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
