"""One exception tree for the whole product.

Lower layers (httpx, sqlite3, smtplib, tomllib) are translated at the boundary
with ``raise Mapped(...) from exc`` so callers only ever catch these::

    AutomationsError                exit code 1
    |- ConfigError                  78 (EX_CONFIG): TOML, unknown rule or name, bad option
    |- APIError                     carries status, type, request_id, errors[]
    |  |- APIUnavailable            timeout, connection, 429, 5xx, malformed body: retried
    |  |- APIRejected               400, 401, 403, 404, 409, 422: permanent, never retried
    |  `- ClockSkew                 the API's Date is too far from the host's: act on neither
    |- RuleError                    carries the rule name; only that rule skips the cycle
    |- LedgerError                  SQLite failure: abort the cycle, keep the daemon
    `- DeliveryError                SMTP failure: the digest stays in the outbox
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class AutomationsError(Exception):
    """Base of every error this product raises on purpose."""

    exit_code = 1


class ConfigError(AutomationsError):
    """The configuration (file, environment or names) cannot be used."""

    exit_code = 78


@dataclass(frozen=True)
class APIErrorDetail:
    """One entry of the error envelope's ``errors`` list."""

    code: str = ""
    message: str = ""
    field: str | None = None
    pointer: str | None = None
    metadata: dict[str, Any] | None = None


class APIError(AutomationsError):
    """The incident.io API (or the way to it) failed; carries the envelope."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        request_id: str | None = None,
        errors: list[APIErrorDetail] | None = None,
        retry_after: float | None = None,
        method: str | None = None,
        route: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.request_id = request_id
        self.errors = list(errors or [])
        self.retry_after = retry_after
        self.method = method
        self.route = route

    @property
    def fields(self) -> list[str]:
        """The ``source.field`` of each error, for messages like 'severity_id: is_required'."""
        return [e.field for e in self.errors if e.field]

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.type:
            parts.append(f"type={self.type}")
        for err in self.errors:
            where = f"{err.field}: " if err.field else ""
            parts.append(f"{where}{err.code or ''} {err.message}".strip())
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return "; ".join(parts)


class APIUnavailable(APIError):
    """Transient: timeout, connection, 429, 5xx or an unreadable body. Retried."""


class APIRejected(APIError):
    """Permanent: the API understood and said no. Never retried."""


class ClockSkew(APIError):
    """The API's clock and the host's disagree by more than ``max_clock_skew``.

    Not retried: nothing is done until one of the clocks is fixed, since
    either may be the wrong one and every rule measures ages against "now".
    """


class RuleError(AutomationsError):
    """A rule failed; only that rule skips the cycle."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"rule {rule!r}: {message}")
        self.rule = rule


class LedgerError(AutomationsError):
    """SQLite failed: abort the cycle, keep the daemon."""


class DeliveryError(AutomationsError):
    """SMTP failed: the digest stays in the outbox."""
