"""``[[channels]]``: where notifications go (email, webhook, apprise, escalation).

Each table is validated when the file loads, so a bad channel fails at start-up
(and in ``validate --offline``), not when the first incident needs it. Secrets
are never in the file: a webhook's signing secret, and apprise URLs when they
carry tokens, come from ``AUTOMATIONS_CHANNEL_<NAME>_...`` variables (or their
``_FILE``), read at start-up by automations/notify/channels/.

The common keys make every channel a ``ChannelPolicy`` (automations/notify/sender.py)
for the outbox: ``include_private``, ``max_per_hour`` and ``expire_after``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    model_validator,
)

from automations.config_errors import repeated_names
from automations.digest.config import EmailAddress, SMTPSettings, envelope_recipients
from automations.durations import Duration

CHANNEL_NAME = r"^[a-z0-9][a-z0-9_-]*$"
DEFAULT_MAX_PER_HOUR = 30
SAFE_ID = r"^[A-Za-z0-9_-]+$"  # an incident.io ID (as the client checks path IDs)


def env_prefix(channel: str) -> str:
    """``ops-hook`` -> ``AUTOMATIONS_CHANNEL_OPS_HOOK_``: where the channel's secrets live."""
    return f"AUTOMATIONS_CHANNEL_{channel.upper().replace('-', '_')}_"


def shown_url(url: str) -> str:
    """``scheme://host[:port]/path`` only: user:password and the query may hold tokens."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "(not a URL)"
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _max_per_hour(value: Any) -> Any:
    """``"off"`` (no limit) becomes None; TOML has no null."""
    return None if value == "off" else value


MaxPerHour = Annotated[
    StrictInt | None,
    BeforeValidator(_max_per_hour),
    PlainSerializer(lambda v: "off" if v is None else v),
]


def check_webhook_url(value: str) -> str:
    """An absolute http(s) URL on one line; the message shows no userinfo or query."""
    from urllib.parse import urlsplit

    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError("must be one URL without spaces or line breaks")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError("is not a URL like https://hooks.example.com/incidents") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(
            f"must be an http:// or https:// URL, e.g. https://hooks.example.com/incidents; "
            f"got {parts.scheme or 'no'} scheme"
        )
    if not parts.hostname:
        raise ValueError(f"{shown_url(value)!r} has no host name")
    return value


def check_apprise_url(value: str) -> str:
    """apprise's own parser accepts it (a known scheme, or a service's native URL).

    The message names the scheme only: the rest of an apprise URL is usually a token.
    """
    from automations.notify.channels.apprise_urls import apprise_url_problem

    problem = apprise_url_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


class ChannelOptions(BaseModel):
    """Keys every channel has; the outbox reads them through ``ChannelPolicy``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=CHANNEL_NAME,
        max_length=64,
        description="Unique name that rules list in notify = [...]: lowercase letters, digits, "
        "'-' and '_'.",
    )
    include_private: StrictBool = Field(
        False,
        description="Send notifications about private incidents here (off: not even their name).",
    )
    max_per_hour: MaxPerHour = Field(
        DEFAULT_MAX_PER_HOUR,
        ge=1,
        description="At most this many notifications an hour; beyond, one summary says how many "
        'were held back. "off" for no limit.',
    )
    expire_after: Duration = Field(
        timedelta(hours=24),
        description="Give up on a notification still undelivered this long after its action.",
    )
    timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="One delivery attempt ends within this."
    )
    templates_dir: Path | None = Field(
        None,
        description="Look for notification templates here first (relative to the config "
        "file); the built-in ones (templates/notify/) fill in the rest.",
    )


class EmailChannel(ChannelOptions):
    """Mail through ``[smtp]``: subject, text and HTML from templates."""

    type: Literal["email"]
    to: tuple[EmailAddress, ...] = Field((), description='Recipients, e.g. ["cto@example.com"].')
    cc: tuple[EmailAddress, ...] = Field((), description="Copied recipients.")
    bcc: tuple[EmailAddress, ...] = Field((), description="Blind-copied recipients.")

    @model_validator(mode="after")
    def _someone(self) -> EmailChannel:
        if not (self.to or self.cc or self.bcc):
            raise ValueError('needs a recipient in to, cc or bcc, e.g. to = ["cto@example.com"]')
        return self

    @property
    def recipients(self) -> list[str]:
        return envelope_recipients(self.to, self.cc, self.bcc)


class WebhookChannel(ChannelOptions):
    """A JSON POST signed per Standard Webhooks; the secret comes from the environment."""

    type: Literal["webhook"]
    url: Annotated[str, AfterValidator(check_webhook_url)] = Field(
        description='Where to POST, e.g. "https://hooks.example.com/incidents".'
    )


class AppriseChannel(ChannelOptions):
    """Any apprise URL (msteams://, ntfy://, discord://, json://, ...)."""

    type: Literal["apprise"]
    urls: tuple[Annotated[str, AfterValidator(check_apprise_url)], ...] | None = Field(
        None,
        min_length=1,
        description='apprise URLs, e.g. ["ntfy://ntfy.sh/ops-alerts"]; when absent, from '
        "AUTOMATIONS_CHANNEL_<NAME>_URLS (or _URLS_FILE), whitespace-separated.",
    )


class EscalationChannel(ChannelOptions):
    """Page people through incident.io: POST /v2/escalations."""

    type: Literal["escalation"]
    escalation_path: str | None = Field(
        None,
        min_length=1,
        description='An escalation path by name, e.g. "Platform primary" (resolved at start-up).',
    )
    user_ids: tuple[Annotated[str, Field(pattern=SAFE_ID)], ...] | None = Field(
        None, min_length=1, description="Or page these users (incident.io user IDs)."
    )

    @model_validator(mode="after")
    def _one_target(self) -> EscalationChannel:
        if (self.escalation_path is None) == (self.user_ids is None):
            raise ValueError(
                'give exactly one of escalation_path (e.g. "Platform primary") or user_ids'
            )
        return self


AnyChannel = Annotated[
    EmailChannel | WebhookChannel | AppriseChannel | EscalationChannel,
    Field(discriminator="type"),
]
CHANNEL_MODELS: dict[str, type[ChannelOptions]] = {
    "email": EmailChannel,
    "webhook": WebhookChannel,
    "apprise": AppriseChannel,
    "escalation": EscalationChannel,
}


def unknown_channel_problems(
    rules: Sequence[BaseModel], channels: Sequence[ChannelOptions]
) -> list[str]:
    """Each channel a rule names (``notify``, a notice rule's ``channels``) that the file
    does not define."""
    known = [channel.name for channel in channels]
    listed = ", ".join(known) or "(none configured: add [[channels]])"
    problems = []
    for index, rule in enumerate(rules):
        for key in ("notify", "channels"):
            names = getattr(rule, key, None)
            if not isinstance(names, tuple):
                continue
            problems += [
                f"rules[{index}].{key}[{j}]: {name!r} is not a channel; channels: {listed}"
                for j, name in enumerate(names)
                if isinstance(name, str) and name not in known
            ]
    return problems


def channel_problems(smtp: SMTPSettings | None, channels: Sequence[ChannelOptions]) -> list[str]:
    """Checks across tables: unique names (and variable prefixes), [smtp] for email."""
    problems = []
    repeated = repeated_names("channels", [c.name for c in channels], "rules name them")
    prefixes: dict[str, int] = {}
    for index, channel in enumerate(channels):
        if index in repeated:
            problems.append(repeated[index])
        elif (prefix := env_prefix(channel.name)) in prefixes:
            other = channels[prefixes[prefix]].name
            problems.append(
                f"channels[{index}].name: {channel.name!r} and {other!r} "
                f"(channels[{prefixes[prefix]}]) share the variables {prefix}*; rename one"
            )
        prefixes.setdefault(env_prefix(channel.name), index)
        if isinstance(channel, EmailChannel) and smtp is None:
            problems.append(
                f'channels[{index}]: type = "email" needs [smtp] with host and sender, '
                'e.g. sender = "Incident Bot <incidents@example.com>"'
            )
    return problems
