"""``[smtp]`` and ``[[digests]]``, validated so a bad digest fails at start-up, not at 08:00."""

from __future__ import annotations

from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Literal
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
from automations.schedules import CronExpression, TimeZoneName
from automations.where import Where

SectionName = Literal["figures", "live", "opened", "resolved", "automations"]
SECTIONS: tuple[SectionName, ...] = ("figures", "live", "opened", "resolved", "automations")
DEFAULT_SUBJECT = (
    "Incidents {{ digest.window_end | day }}: {{ digest.figures.live }} live, "
    "{{ digest.figures.opened }} opened, {{ digest.figures.resolved }} resolved"
)


def check_address(value: str) -> str:
    """One mailbox, ``a@b.c`` or ``Name <a@b.c>``; never a line break (header injection)."""
    if any(ch in value for ch in "\r\n\0"):
        raise ValueError(f"{value!r} contains a line break; an address is one line")
    _, addr = parseaddr(value)
    local, at, domain = addr.rpartition("@")
    if not at or not local or "." not in domain or " " in addr or addr.count("@") != 1:
        raise ValueError(f"{value!r} is not an email address like oncall@example.com")
    return value


EmailAddress = Annotated[str, AfterValidator(check_address)]


def address_part(value: str) -> str:
    """``incidents@example.com`` from ``Incident Bot <incidents@example.com>``."""
    return parseaddr(value)[1]


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
    timeout_seconds: float = Field(30.0, gt=0, le=300, description="Per SMTP connection.")
    retry_backoff: Duration = Field(
        timedelta(minutes=1),
        description="Wait before the first retry of a failed send; doubles each time.",
    )
    retry_backoff_max: Duration = Field(
        timedelta(minutes=30), description="Never wait longer than this."
    )


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
    where: Where = Field(default_factory=Where, description="Server-side incident filters.")
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
        from jinja2 import Environment, TemplateSyntaxError

        try:
            Environment().parse(value)
        except TemplateSyntaxError as exc:
            raise ValueError(f"not a valid Jinja template: {exc.message}") from None
        return value

    @field_validator("sections")
    @classmethod
    def _unique_sections(cls, value: tuple[SectionName, ...]) -> tuple[SectionName, ...]:
        if len(set(value)) != len(value):
            raise ValueError("each section may be listed once")
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
        return list(dict.fromkeys(address_part(a) for a in (*self.to, *self.cc, *self.bcc)))
