"""``[webhooks]``: where incident.io's deliveries arrive, and the secrets they are signed with.

The endpoint is a route of the ``[server]`` listener, so it needs ``[server]
enabled``. The secrets are never in the file: ``AUTOMATIONS_WEBHOOK_SECRET`` (or
``AUTOMATIONS_WEBHOOK_SECRET_FILE``) holds one or more ``whsec_...`` secrets,
separated by spaces or lines; a delivery signed with any of them is accepted, so
a secret can be rotated without missing a delivery.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictInt,
    field_validator,
)

from automations.durations import Duration, format_duration
from automations.errors import ConfigError, Problems

SECRET_VARIABLE = "AUTOMATIONS_WEBHOOK_SECRET"
DEFAULT_PATH = "/webhooks/incident-io"
MIB = 1024 * 1024
RESERVED_PATHS = frozenset({"/healthz", "/metrics"})
_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")
MIN_TOLERANCE, MAX_TOLERANCE = timedelta(seconds=30), timedelta(hours=1)


class WebhookSettings(BaseModel):
    """The endpoint on the ``[server]`` listener; off unless asked for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: StrictBool = Field(
        False, description="Accept incident.io webhooks on the [server] listener."
    )
    path: str = Field(
        DEFAULT_PATH,
        max_length=200,
        description="The URL path incident.io POSTs to (register <public URL><path>).",
    )
    max_body_bytes: StrictInt = Field(
        MIB,
        ge=1024,
        le=16 * MIB,
        description="Larger deliveries are refused with 413 before they are verified.",
    )
    tolerance: Duration = Field(
        timedelta(minutes=5),
        description="Deliveries signed further than this from now (either way) are refused.",
    )

    @field_validator("path")
    @classmethod
    def _a_path(cls, value: str) -> str:
        if not _PATH.match(value) or "//" in value:
            raise ValueError(
                f"{value[:40]!r} is not a URL path: it starts with / and has no spaces, "
                'query or fragment, e.g. "/webhooks/incident-io"'
            )
        if value.rstrip("/") in RESERVED_PATHS or value == "/":
            raise ValueError(f"{value!r} is taken: use a path of its own, e.g. {DEFAULT_PATH!r}")
        return value

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, value: timedelta) -> timedelta:
        if not MIN_TOLERANCE <= value <= MAX_TOLERANCE:
            raise ValueError(
                f"{format_duration(value)} is outside {format_duration(MIN_TOLERANCE)} to "
                f"{format_duration(MAX_TOLERANCE)}; Standard Webhooks uses 5m"
            )
        return value


def webhook_problems(server_enabled: bool, webhooks: WebhookSettings) -> list[str]:
    """Checks across tables: the endpoint is served by the [server] listener."""
    if webhooks.enabled and not server_enabled:
        return [
            "webhooks.enabled: needs [server] enabled = true: incident.io's deliveries arrive "
            'on the [server] listener (set host and port there, e.g. host = "0.0.0.0")'
        ]
    return []


def webhook_secrets(environ: Mapping[str, str] | None = None) -> list[SecretStr]:
    """The signing secrets from ``AUTOMATIONS_WEBHOOK_SECRET`` (or its ``_FILE``), oldest
    rotation first; ConfigError (never quoting a secret) when none is set or one is malformed."""
    from automations.notify.channels.webhook import secret_problem
    from automations.settings import env_secret

    found = env_secret(SECRET_VARIABLE, environ)
    secrets = found.get_secret_value().split() if found is not None else []
    if not secrets:
        raise ConfigError(
            f"webhooks: no signing secret: set {SECRET_VARIABLE} (or {SECRET_VARIABLE}_FILE) to "
            "the secret incident.io shows for the endpoint (Settings -> Webhooks), whsec_...; "
            "during a rotation, both secrets separated by a space"
        )
    problems = Problems()
    for index, secret in enumerate(secrets, start=1):
        problem = secret_problem(secret)
        if problem is not None:
            which = f"secret {index} of {len(secrets)}" if len(secrets) > 1 else "the secret"
            problems.add(f"webhooks: {which} in {SECRET_VARIABLE} (or its _FILE) {problem}")
    problems.raise_if_any()
    return [SecretStr(secret) for secret in secrets]
