"""PostgreSQL URLs: recognised, and shown without their password (pure functions, no driver).

A URL may carry a password in its userinfo (``postgresql://user:secret@host/db``)
or as a query parameter (``?password=secret``); libpq also reads ``PGPASSWORD``
and ``PGPASSFILE`` itself. Wherever a URL is shown (errors, logs, ``validate``,
``/healthz``), ``redact`` replaces the password with ``***``.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit

SCHEMES = ("postgresql://", "postgres://")
HIDDEN = "***"

# userinfo's password: between "scheme://user:" and the last "@" before the host.
_USERINFO_PASSWORD = re.compile(r"^(?P<head>[a-z]+://[^:@/?#]*:)(?P<password>[^/?#]*)@", re.I)
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)(?P<password>[^&#]*)", re.I)


def is_postgres_url(text: str) -> bool:
    """Whether ``text`` names a PostgreSQL ledger rather than a SQLite file."""
    return text.lower().startswith(SCHEMES)


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``; the rest kept, to say where it points."""
    url = _USERINFO_PASSWORD.sub(lambda m: f"{m['head']}{HIDDEN}@", url, count=1)
    return _QUERY_PASSWORD.sub(lambda m: f"{m['head']}{HIDDEN}", url)


def passwords(url: str) -> list[str]:
    """The password(s) written in ``url`` (raw and decoded), to scrub them from any text."""
    found: list[str] = []
    match = _USERINFO_PASSWORD.match(url)
    if match and match["password"]:
        found += [match["password"], unquote(match["password"])]
    for m in _QUERY_PASSWORD.finditer(url):
        if m["password"]:
            found += [m["password"], unquote(m["password"])]
    try:
        split = urlsplit(url)
        if split.password:
            found.append(split.password)
        found += [value for key, value in parse_qsl(split.query) if key == "password" and value]
    except ValueError:
        pass  # malformed: the regular expressions above did what can be done
    return sorted({p for p in found if p}, key=len, reverse=True)


def has_password(url: str) -> bool:
    return bool(passwords(url))


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's error, say) with ``url``'s password replaced by ``***``."""
    for secret in passwords(url):
        text = text.replace(secret, HIDDEN)
    return text
