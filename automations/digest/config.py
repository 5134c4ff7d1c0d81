"""``[smtp]`` and ``[[digests]]``, validated so a bad digest fails at start-up, not at 08:00."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Annotated, Literal, get_args
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from automations.durations import Duration
from automations.errors import ConfigError
from automations.schedules import CronExpression, TimeZoneName
from automations.where import Where

SectionName = Literal[
    "figures", "oncall", "live", "opened", "resolved", "follow_ups", "trends", "automations"
]
# The order sections appear in, whatever order the config lists them in; each one is
# templates/digest/<section>.html.j2 and .txt.j2.
SECTIONS: tuple[SectionName, ...] = get_args(SectionName)
DEFAULT_SUBJECT = (
    '{{ digest.cadence | capitalize }} digest "{{ digest.name }}" · {{ digest.period_label }}: '
    "{{ digest.figures.live }} live, {{ digest.figures.opened }} opened, "
    "{{ digest.figures.resolved }} resolved"
)


# str.splitlines() breaks at each of these: a header folded or parsed at one is two lines.
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
# Control, format (bidi overrides, zero-width, BOM), surrogate, line and paragraph separators.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def check_address(value: str) -> str:
    """One mailbox, ``a@b.c`` or ``Name <a@b.c>``, on one line of printable text.

    The header (To:, Cc:) and the envelope (RCPT TO) must name the same mailbox:
    ``a@x.com, b@y.com`` would show both but deliver to one, so it is refused, as
    is any line break (header injection) or control character (smtplib crashes on
    them, or a display name hides the real address).
    """
    import unicodedata

    for ch in value:
        if ch in _LINE_BREAKS:
            raise ValueError(
                f"{value!r} contains a line break (U+{ord(ch):04X}); an address is one line"
            )
        if unicodedata.category(ch) in _UNPRINTABLE:
            raise ValueError(
                f"{value!r} contains a control character (U+{ord(ch):04X}); "
                "an address is printable text"
            )
    example = "an email address like oncall@example.com or Name <oncall@example.com>"
    listed = [addr for _, addr in getaddresses([value]) if addr]
    if len(listed) > 1:
        raise ValueError(
            f"{value!r} holds {len(listed)} addresses ({', '.join(listed)}); "
            "list each as its own entry"
        )
    _, addr = parseaddr(value)
    local, at, domain = addr.rpartition("@")
    if not at or not local or "." not in domain or " " in addr or addr.count("@") != 1:
        raise ValueError(f"{value!r} is not {example}")
    if not addr.isascii():
        raise ValueError(
            f"{value!r}: the address itself must be ASCII (a display name may be anything)"
        )
    if _header_mailboxes(value) != [addr]:
        raise ValueError(f"{value!r} is not {example}")
    return value


def _header_mailboxes(value: str) -> list[str]:
    """The mailboxes a To: header holding ``value`` names, as a mail client reads it."""
    import email.policy

    header = email.policy.default.header_factory("To", value)
    if header.defects:
        return []
    return [address.addr_spec for address in header.addresses]


EmailAddress = Annotated[str, AfterValidator(check_address)]


def address_part(value: str) -> str:
    """``incidents@example.com`` from ``Incident Bot <incidents@example.com>``."""
    return parseaddr(value)[1]


def envelope_recipients(to: Sequence[str], cc: Sequence[str], bcc: Sequence[str]) -> list[str]:
    """RCPT TO addresses: to, cc and bcc once each (bcc never appears in a header)."""
    return list(dict.fromkeys(address_part(a) for a in (*to, *cc, *bcc)))


class SMTPSettings(BaseModel):
    """The mail server. The password is not here: it comes from AUTOMATIONS_SMTP_PASSWORD
    (or a file named by AUTOMATIONS_SMTP_PASSWORD_FILE)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1, description="SMTP server host name.")
    port: StrictInt = Field(587, ge=1, le=65535, description="587 for starttls, 465 for tls.")
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="starttls (upgrade after connecting), tls (implicit) or none."
    )
    username: str | None = Field(
        None,
        description="Log in as this user (password from AUTOMATIONS_SMTP_PASSWORD, or a file "
        "named by AUTOMATIONS_SMTP_PASSWORD_FILE).",
    )
    sender: EmailAddress = Field(description='From:, e.g. "Incident Bot <incidents@example.com>".')
    timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=300,
        description="The whole send (connect, TLS, login, every transaction) ends within this.",
    )
    retry_backoff: Duration = Field(
        timedelta(minutes=1),
        description="Wait before the first retry of a failed send; doubles each time.",
    )
    retry_backoff_max: Duration = Field(
        timedelta(minutes=30), description="Never wait longer than this."
    )
    allow_plaintext_auth: StrictBool = Field(
        False,
        description='With security = "none": log in anyway, sending the password unencrypted '
        "to a host that is not loopback (only on a network you trust).",
    )

    @model_validator(mode="after")
    def _no_cleartext_password(self) -> SMTPSettings:
        if (
            self.security == "none"
            and self.username
            and not self.allow_plaintext_auth
            and not is_loopback(self.host)
        ):
            raise ValueError(
                f'security = "none" would send the password of {self.username!r} in clear text '
                f'to {self.host}; use security = "starttls" (port 587) or "tls" (port 465), '
                "or set allow_plaintext_auth = true if that network is trusted"
            )
        return self


def is_loopback(host: str) -> bool:
    """localhost or a loopback IP: a password sent there never leaves the machine."""
    import ipaddress

    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def smtp_password_problem(smtp: SMTPSettings | None, password: SecretStr | None) -> str | None:
    """The problem when the server wants a login and no password is set (never the password)."""
    if smtp is None or not smtp.username or password is not None:
        return None
    return (
        f"smtp.username: {smtp.username!r} logs in, so its password must be in "
        "AUTOMATIONS_SMTP_PASSWORD or in a file named by AUTOMATIONS_SMTP_PASSWORD_FILE"
    )


class DigestOptions(BaseModel):
    """One ``[[digests]]`` table: who gets what, when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        max_length=64,
        description="Unique name: lowercase letters, digits, '-' and '_'. Part of the outbox key.",
    )
    enabled: StrictBool = Field(True, description="false keeps it in the file but never sends.")
    cron: CronExpression = Field(description="When to send, e.g. '0 8 * * mon-fri'.")
    timezone: TimeZoneName | None = Field(
        None, description="IANA timezone of the cron and of times in the mail (required)."
    )
    to: tuple[EmailAddress, ...] = Field(min_length=1, description="Recipients.")
    cc: tuple[EmailAddress, ...] = Field((), description="Copied recipients.")
    bcc: tuple[EmailAddress, ...] = Field((), description="Blind-copied recipients.")
    subject: str = Field(
        DEFAULT_SUBJECT,
        min_length=1,
        description="Jinja template of the subject; line breaks become spaces.",
    )
    where: Where = Field(
        default_factory=Where,
        description="Incident filters: sent to the API, except team_ids (judged after fetching).",
    )
    include_private: StrictBool = Field(
        False, description="Show private incidents (off: not even their names or counts)."
    )
    include_test: StrictBool = Field(False, description="Show test and tutorial incidents.")
    template: str = Field(
        "digest",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Uses NAME.html.j2 and NAME.txt.j2.",
    )
    templates_dir: Path | None = Field(
        None,
        description="Look for templates here first (relative to the config file); "
        "the built-in ones fill in the rest.",
    )
    sections: tuple[SectionName, ...] = Field(
        SECTIONS, min_length=1, description="Which sections to show (always in this order)."
    )
    schedules: tuple[str, ...] = Field(
        (),
        description="On-call schedules to show, by name or ID (empty: all), checked at start-up.",
    )
    trend_period: Literal["auto", "day", "week"] = Field(
        "auto",
        description="Trends per day (last 7) or per week (last 8); auto: weeks when the cron "
        "fires a week or more apart.",
    )
    max_incidents: StrictInt = Field(
        200,
        ge=1,
        le=1000,
        description="Incident rows in one mail; beyond, 'and N more' links to incident.io.",
    )
    default_window: Duration = Field(
        timedelta(hours=24),
        description="How far back the first digest looks (later: since the previous one).",
    )
    catch_up_grace: Duration = Field(
        timedelta(hours=4),
        description="A run missed by at most this much is sent once at start-up.",
    )
    expire_after: Duration = Field(
        timedelta(hours=12),
        description="Give up on a digest still unsent this long after it was rendered.",
    )

    @field_validator("subject")
    @classmethod
    def _valid_subject(cls, value: str) -> str:
        from jinja2 import TemplateSyntaxError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        try:
            ImmutableSandboxedEnvironment().parse(value)
        except TemplateSyntaxError as exc:
            raise ValueError(f"not a valid Jinja template: {exc.message}") from None
        return value

    @field_validator("sections")
    @classmethod
    def _unique_sections(cls, value: tuple[SectionName, ...]) -> tuple[SectionName, ...]:
        if len(set(value)) != len(value):
            raise ValueError("each section may be listed once")
        return value

    @field_validator("schedules")
    @classmethod
    def _named_schedules(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not name.strip() for name in value):
            raise ValueError("a schedule is named by its name or ID, never an empty string")
        if len(set(value)) != len(value):
            raise ValueError("each schedule may be listed once")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> DigestOptions:
        if self.timezone is None:
            raise ValueError('cron needs a timezone, e.g. timezone = "Europe/London"')
        hidden = [m for m in self.where.mode if m in ("test", "tutorial")]
        if hidden and not self.include_test:
            raise ValueError(
                f"where.mode lists {', '.join(hidden)}: set include_test = true to show them"
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        assert self.timezone is not None  # _coherent refuses a digest without one
        return ZoneInfo(self.timezone)

    @property
    def recipients(self) -> list[str]:
        """Envelope recipients: to, cc and bcc (bcc never appears in a header)."""
        return envelope_recipients(self.to, self.cc, self.bcc)


def no_such_digest(path: Path, name: str, known: Sequence[str]) -> ConfigError:
    """A NAME that is not a digest of the file: say which ones are."""
    listed = ", ".join(known) or "(none configured)"
    return ConfigError(f"{path}: no digest named {name!r}; digests: {listed}")
