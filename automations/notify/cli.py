"""``automations notify test CHANNEL``: send a made-up notice to one channel, now.

It goes straight through the channel's sender, not the outbox: nothing is queued or
recorded, and the notice is clearly a test (type ``notifications.test``, an invented
incident), never a real one. One line says where it went or why not; the exit code is
0 when the receiver accepted it, 1 when it did not, 78 for a configuration problem.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from automations.cli_options import Group, config_option

if TYPE_CHECKING:
    from automations.config import Config
    from automations.notify.config import ChannelOptions


@click.group(cls=Group)
def notify() -> None:
    """Notification channels: send a test to one."""


@notify.command(name="test")
@config_option
@click.argument("channel")
def notify_test(config_path: Path, channel: str) -> None:
    """Send a sample notification (a made-up incident, marked as a test) to CHANNEL now.

    Not queued, not recorded, not rate limited. Exit 0 when it was accepted, 1 when not.
    """
    from automations.clock import host_now
    from automations.config import load_config
    from automations.errors import NotifyError
    from automations.notify.channels.build import build_sender
    from automations.notify.config import EmailChannel, EscalationChannel
    from automations.notify.sample import probe_notice
    from automations.settings import Environment

    config = load_config(config_path)
    options = _channel(config, channel)
    environment = Environment()
    client = None
    if isinstance(options, EscalationChannel):
        from automations.runtime import make_client

        client = make_client(config, environment.api_key(), interactive=True)
    try:
        password = None
        if isinstance(options, EmailChannel):
            from automations.digest.config import smtp_password_problem
            from automations.errors import ConfigError

            password = environment.smtp_password()
            problem = smtp_password_problem(config.smtp, password)
            if problem is not None:
                raise ConfigError(f"{config.path}: {problem}")
        sender = build_sender(config, channel, client, smtp_password=password)
        notice = probe_notice(channel, host_now())
        try:
            sender.send(notice, key=notice.event_key)
        except NotifyError as exc:
            click.echo(f"channel {channel}: test not delivered: {exc}", err=True)
            sys.exit(1)
    finally:
        if client is not None:
            client.close()
    click.echo(f"channel {channel}: test notification accepted ({_destination(config, options)})")


def _channel(config: Config, name: str) -> ChannelOptions:
    from automations.errors import ConfigError

    for options in config.channels:
        if options.name == name:
            return options
    listed = ", ".join(c.name for c in config.channels) or "(none configured)"
    raise ConfigError(f"{config.path}: no channel named {name!r}; channels: {listed}")


def _destination(config: Config, options: ChannelOptions) -> str:
    """Where it went, in words: never a secret, a URL's token or its query."""
    from automations.notify.channels.apprise_urls import scheme_of
    from automations.notify.config import (
        AppriseChannel,
        EmailChannel,
        EscalationChannel,
        WebhookChannel,
        shown_url,
    )

    if isinstance(options, EmailChannel):
        smtp = config.smtp
        server = f" via {smtp.host}:{smtp.port}" if smtp is not None else ""
        return f"mailed to {', '.join(options.recipients)}{server}"
    if isinstance(options, WebhookChannel):
        return f"POSTed to {shown_url(options.url)}"
    if isinstance(options, AppriseChannel):
        if options.urls is None:
            return "sent to the apprise URLs in the environment"
        schemes = ", ".join(f"{scheme_of(url)}://" for url in options.urls)
        return f"sent to {len(options.urls)} apprise URLs ({schemes})"
    if isinstance(options, EscalationChannel):
        if options.escalation_path is not None:
            return f"escalation created on the path {options.escalation_path!r}"
        return f"escalation created for {len(options.user_ids or ())} users"
    return options.name
