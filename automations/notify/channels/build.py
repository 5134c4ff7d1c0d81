"""A config's channels made into senders, every problem of every channel reported at once.

What a channel needs beyond the file is found here, at start-up, not at its first
notification: the webhook's signing secret and apprise URLs kept out of the TOML
(``AUTOMATIONS_CHANNEL_<NAME>_SECRET`` / ``_URLS``, or their ``_FILE``), the ID of a named
escalation path (one ``GET /v2/escalation_paths`` listing for all channels), and the
templates (each rendered once with a sample of every event type).

``check_channels`` runs the same steps for ``validate`` (and start-up's whole-file check)
without building anything: offline it checks templates only; given the environment,
the secrets; given a client, the escalation paths.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import SecretStr

from automations.clock import host_now
from automations.config import Config
from automations.errors import ConfigError, Problems, config_key
from automations.notify.config import (
    AppriseChannel,
    ChannelOptions,
    EmailChannel,
    EscalationChannel,
    WebhookChannel,
    env_prefix,
)
from automations.notify.render import NoticeTemplates
from automations.notify.sender import INCIDENT_UPDATE_CHANNEL, Sender

if TYPE_CHECKING:
    from automations.incidentio import IncidentIOClient


def build_senders(
    config: Config,
    client: IncidentIOClient | None,
    *,
    smtp_password: SecretStr | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] = host_now,
) -> dict[str, Sender]:
    """A sender per ``[[channels]]`` entry, plus ``INCIDENT_UPDATE_CHANNEL`` (given a client).

    ``client`` may be None only when no channel is an escalation (``notify test`` of an
    email or webhook channel needs no API key). One ConfigError lists every problem.
    """
    builder = ChannelBuilder(config, client, smtp_password, environ, clock)
    problems = Problems()
    senders: dict[str, Sender] = {}
    if client is not None:
        from automations.notify.channels.timeline import IncidentUpdateSender

        senders[INCIDENT_UPDATE_CHANNEL] = IncidentUpdateSender(client)
    for index, channel in enumerate(config.channels):
        with problems.collect(f"channels[{index}]"):
            senders[channel.name] = builder.sender(channel)
    problems.raise_if_any(config.path)
    return senders


def build_sender(
    config: Config,
    name: str,
    client: IncidentIOClient | None,
    *,
    smtp_password: SecretStr | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] = host_now,
) -> Sender:
    """The sender of one channel (``automations notify test NAME``)."""
    names = [c.name for c in config.channels]
    if name not in names:
        listed = ", ".join(names) or "(none configured)"
        raise ConfigError(f"{config.path}: no channel named {name!r}; channels: {listed}")
    index = names.index(name)
    builder = ChannelBuilder(config, client, smtp_password, environ, clock)
    problems = Problems()
    sender: Sender | None = None
    with problems.collect(f"channels[{index}]"):
        sender = builder.sender(config.channels[index])
    problems.raise_if_any(config.path)
    assert sender is not None  # built, or a problem was raised
    return sender


def check_channels(
    config: Config,
    problems: Problems,
    *,
    environ: Mapping[str, str] | None = None,
    client: IncidentIOClient | None = None,
    clock: Callable[[], datetime] = host_now,
) -> None:
    """Each channel's templates; with ``environ`` its secrets, with ``client`` its path."""
    builder = ChannelBuilder(config, client, None, environ, clock)
    for index, channel in enumerate(config.channels):
        prefix = f"channels[{index}]"
        with problems.collect(prefix):
            builder.templates(channel)
        if environ is not None:
            with problems.collect(prefix):
                if isinstance(channel, WebhookChannel):
                    builder.webhook_secret(channel)
                elif isinstance(channel, AppriseChannel):
                    builder.apprise_urls(channel)
        if client is not None and isinstance(channel, EscalationChannel):
            with problems.collect(prefix):
                builder.escalation_path_id(channel)


@dataclass
class ChannelBuilder:
    """The steps from a channel's options to its sender; each raises a ConfigError."""

    config: Config
    client: IncidentIOClient | None
    smtp_password: SecretStr | None
    environ: Mapping[str, str] | None
    clock: Callable[[], datetime]
    _paths: dict[str, str] | None = field(default=None, init=False)

    @property
    def env(self) -> Mapping[str, str]:
        return os.environ if self.environ is None else self.environ

    def sender(self, channel: ChannelOptions) -> Sender:
        templates = self.templates(channel) if not isinstance(channel, WebhookChannel) else None
        if isinstance(channel, EmailChannel):
            return self._email(channel, templates)
        if isinstance(channel, WebhookChannel):
            from automations.notify.channels.webhook import WebhookSender

            return WebhookSender(
                channel.name,
                channel.url,
                self.webhook_secret(channel),
                timeout_seconds=channel.timeout_seconds,
                clock=self.clock,
            )
        if isinstance(channel, AppriseChannel):
            from automations.notify.channels.apprise_urls import AppriseSender

            urls, labels = self.apprise_urls(channel)
            assert templates is not None
            return AppriseSender(channel.name, urls, labels, templates, channel.timeout_seconds)
        if isinstance(channel, EscalationChannel):
            from automations.notify.channels.escalation import EscalationSender

            assert templates is not None
            return EscalationSender(
                channel.name,
                self._client(channel),
                templates,
                escalation_path_id=self.escalation_path_id(channel),
                user_ids=channel.user_ids,
            )
        raise ConfigError(f"type: {type(channel).__name__} has no sender")

    def templates(self, channel: ChannelOptions) -> NoticeTemplates | None:
        """The channel's templates, checked by rendering a sample of each event type."""
        if isinstance(channel, WebhookChannel):
            return None  # its body is the notice's JSON, not a template
        kind = {EmailChannel: "email", AppriseChannel: "apprise", EscalationChannel: "escalation"}
        directory = channel.templates_dir  # load_config made it absolute (config's folder)
        if directory is not None and not directory.is_dir():
            raise ConfigError(f"templates_dir: {directory}: no such directory")
        templates = NoticeTemplates(kind[type(channel)], channel.name, directory)
        with config_key("templates_dir" if directory is not None else "templates"):
            templates.check(self.clock())
        return templates

    def webhook_secret(self, channel: WebhookChannel) -> SecretStr:
        from automations.notify.channels.webhook import secret_problem
        from automations.settings import env_secret  # pydantic-settings: not for --offline

        variable = f"{env_prefix(channel.name)}SECRET"
        secret = env_secret(variable, self.env)
        if secret is None:
            raise ConfigError(
                f"webhook {channel.name!r} has no signing secret: set {variable} (or "
                f'{variable}_FILE) to "whsec_" followed by base64, e.g. '
                "whsec_$(openssl rand -base64 32)"
            )
        problem = secret_problem(secret.get_secret_value())
        if problem is not None:
            raise ConfigError(f"the signing secret in {variable} (or its _FILE) {problem}")
        return secret

    def apprise_urls(self, channel: AppriseChannel) -> tuple[list[str], list[str]]:
        """The URLs and how messages name them: ``urls[j]``, or the variable's ``[j]``."""
        if channel.urls is not None:
            return list(channel.urls), [f"urls[{j}]" for j in range(len(channel.urls))]
        from automations.notify.channels.apprise_urls import apprise_url_problem
        from automations.settings import env_secret

        variable = f"{env_prefix(channel.name)}URLS"
        text = env_secret(variable, self.env)
        urls = text.get_secret_value().split() if text is not None else []
        if not urls:
            raise ConfigError(
                f"urls: none given for {channel.name!r}: list them in the file, or set "
                f"{variable} (or {variable}_FILE) to apprise URLs separated by spaces or lines"
            )
        labels = [f"URL {j} of {variable}" for j in range(len(urls))]
        problems = Problems()
        for label, url in zip(labels, urls, strict=True):
            problem = apprise_url_problem(url)
            if problem is not None:
                problems.add(f"{label}: {problem}")
        problems.raise_if_any()
        return urls, labels

    def escalation_path_id(self, channel: EscalationChannel) -> str | None:
        """The named path's ID (the API's list, fetched once per build); None for user_ids."""
        name = channel.escalation_path
        if name is None:
            return None
        paths = self._escalation_paths(channel)
        if name in paths:
            return paths[name]
        folded = [p for p in paths if p.casefold() == name.casefold()]
        if len(folded) == 1:
            return paths[folded[0]]
        listed = ", ".join(repr(p) for p in sorted(paths)) or "(none in this organisation)"
        raise ConfigError(f"escalation_path: {name!r} is not an escalation path; valid: {listed}")

    def _escalation_paths(self, channel: EscalationChannel) -> dict[str, str]:
        if self._paths is None:
            self._paths = {p.name: p.id for p in self._client(channel).iter_escalation_paths()}
        return self._paths

    def _client(self, channel: ChannelOptions) -> IncidentIOClient:
        if self.client is None:
            raise ConfigError(f'type = "escalation" ({channel.name}) needs the incident.io API')
        return self.client

    def _email(self, channel: EmailChannel, templates: NoticeTemplates | None) -> Sender:
        from automations.digest.delivery import Mailer
        from automations.notify.channels.mail import EmailSender

        smtp = self.config.smtp
        if smtp is None:  # load_config refuses this; a Config built in code might not
            raise ConfigError('type = "email" needs [smtp]')
        assert templates is not None
        return EmailSender(channel, Mailer(smtp, self.smtp_password), templates, self.clock)
