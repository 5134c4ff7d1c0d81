"""One exception tree for the whole product.

Lower layers (httpx, sqlite3, smtplib, tomllib) are translated at the boundary
with ``raise Mapped(...) from exc`` so callers only ever catch these::

    AutomationsError                exit code 1
    |- ConfigError                  78 (EX_CONFIG): TOML, unknown rule or name, bad option
    |- APIError                     carries status, type, request_id, errors[]
    |  |- APIUnavailable            timeout, connection, 429, 5xx, malformed body: retried
    |  |- APIRejected               400, 401, 403, 404, 409, 422: permanent, never retried
    |  |  `- APIAccessDenied        401, 403: the key is wrong or lacks a permission; 77 (EX_NOPERM)
    |  `- ClockSkew                 the API's Date is too far from the host's: act on neither
    |- RuleError                    carries the rule name; only that rule skips the cycle
    |- LedgerError                  SQLite failure: abort the cycle, keep the daemon
    |- DeliveryError                SMTP failure: the digest stays in the outbox
    |- NotLeader                    this replica does not hold the leader lock: it acts on nothing
    `- NotifyError                  a channel could not take a notification
       |- NotifyRetryable           timeout, connection, 429, 5xx: queued again, with backoff
       `- NotifyRejected            the receiver said no for good (4xx, bad address): failed
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# "rules[0].steps[1].to" or "where.custom_field.Affected service[0]": a key path, not prose.
_KEY_PATH = re.compile(r"^[A-Za-z_]\w*(?:[.\[][^:'\"]*)?$")


class AutomationsError(Exception):
    """Base of every error this product raises on purpose."""

    exit_code = 1


class ConfigError(AutomationsError):
    """The configuration (file, environment or names) cannot be used.

    ``problems`` are its lines without the file name, so a caller can gather
    the problems of several rules and digests into one error (see Problems).
    """

    exit_code = 78

    def __init__(self, message: str, problems: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems) if problems is not None else message.splitlines()

    @classmethod
    def listing(cls, problems: Sequence[str], path: Path | str | None = None) -> ConfigError:
        """One error for many problems, the file named once at the top::

        config.toml: 2 problems:
          rules[0].steps[0].to: 'Sev 1' is not a known severity; valid: ...
          digests[0].where.severity[0]: 'Tiny' is not a known severity; valid: ...
        """
        if path is None:
            return cls("\n".join(problems), problems)
        if len(problems) == 1:
            return cls(f"{path}: {problems[0]}", problems)
        lines = "".join(f"\n  {problem}" for problem in problems)
        return cls(f"{path}: {len(problems)} problems:{lines}", problems)

    def located(self, key: str = "", path: Path | str | None = None) -> ConfigError:
        """The same problems under ``key`` (see at_key), the file ``path`` named at the top."""
        return ConfigError.listing([at_key(key, problem) for problem in self.problems], path)


def at_key(prefix: str, problem: str) -> str:
    """``rules[1]`` + ``steps[0].to: ...`` -> ``rules[1].steps[0].to: ...``; prose gets ``: ``."""
    if not prefix:
        return problem
    head, sep, _ = problem.partition(": ")
    if sep and _KEY_PATH.match(head):
        return f"{prefix}.{problem}"
    return f"{prefix}: {problem}"


@contextmanager
def config_key(key: str, path: Path | str | None = None) -> Iterator[None]:
    """Run a block; a ConfigError it raises is raised again located at ``key`` (and ``path``).

    So a check can name its own keys (``to: ...``) and its caller adds where they sit::

        with config_key("mirror.field"):
            field_ = catalog.custom_field(mirror.field)  # -> mirror.field: 'Teem' is not a ...
    """
    try:
        yield
    except ConfigError as exc:
        raise exc.located(key, path) from None


class Problems:
    """Config problems gathered in one pass, raised together so a user sees them all at once."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, problem: str | ConfigError, prefix: str = "") -> None:
        found = problem.problems if isinstance(problem, ConfigError) else [problem]
        for line in found:
            line = at_key(prefix, line)
            if line not in self.lines:
                self.lines.append(line)

    @contextmanager
    def collect(self, prefix: str = "") -> Iterator[None]:
        """Run a block; a ConfigError it raises becomes problems (under ``prefix``)."""
        try:
            yield
        except ConfigError as exc:
            self.add(exc, prefix)

    def raise_if_any(self, path: Path | str | None = None) -> None:
        if self.lines:
            raise ConfigError.listing(self.lines, path)


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
        # Set by the client when the call gives up: where it went, and how hard it tried.
        self.base_url: str | None = None
        self.attempts = 0
        self.elapsed = 0.0

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


class APIAccessDenied(APIRejected):
    """401 or 403: the key is wrong, revoked, or lacks a permission for this call."""

    exit_code = 77


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


class NotLeader(AutomationsError):
    """This replica does not hold the leader lock (any more): no effect may start.

    Raised by the guard checked before each effect (an edit, a digest, a
    notification); it ends the cycle or the delivery pass quietly, and the
    daemon goes back to being a standby (automations/leadership.py).
    """


class NotifyError(AutomationsError):
    """A channel could not take a notification; the outbox row says what happens next."""


class NotifyRetryable(NotifyError):
    """Transient (timeout, connection, 429, 5xx): the notification stays queued and is retried."""


class NotifyRejected(NotifyError):
    """Final (4xx other than 408/429, refused address): the notification is marked failed."""
