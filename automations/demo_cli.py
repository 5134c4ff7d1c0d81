"""``automations sandbox`` and ``automations demo``: try it all with no account, no network.

``sandbox`` serves the incident.io simulator (``automations/sandbox/``) on loopback,
optionally sending its signed webhooks; ``demo`` runs that simulator, a local SMTP
server and the daemon together (``demo.py``). The simulator and the daemon load only
when a command runs: ``sandbox/__init__.py`` builds the ASGI app, so this module lives
beside the package rather than in it, keeping ``automations --help`` fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from automations.cli_options import Command, config_settings

if TYPE_CHECKING:
    from automations.sandbox.webhook_sender import WebhookTarget


@click.command(cls=Command)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--api-key", default="sandbox", show_default=True, help="The Bearer token to accept.")
@click.option(
    "--seed", default=1, show_default=True, type=int, help="Same seed, same organisation."
)
@click.option("--incidents", default=200, show_default=True, type=click.IntRange(0, 100_000))
@click.option(
    "--rate-limit",
    default=1200,
    show_default=True,
    type=click.IntRange(1),
    help="Requests per minute per key before 429.",
)
@click.option(
    "--webhook-url",
    default=None,
    metavar="URL",
    help="Send incident.io's signed webhook for every incident and follow-up change here "
    "(e.g. the daemon's http://127.0.0.1:9108/webhooks/incident-io).",
)
@click.option(
    "--webhook-secret",
    default=None,
    metavar="whsec_...",
    envvar="AUTOMATIONS_WEBHOOK_SECRET",
    show_envvar=True,
    help="The signing secret for --webhook-url (the daemon reads the same variable).",
)
def sandbox(
    host: str,
    port: int,
    api_key: str,
    seed: int,
    incidents: int,
    rate_limit: int,
    webhook_url: str | None,
    webhook_secret: str | None,
) -> None:
    """Serve a faithful incident.io simulator (no account, no network)."""
    from automations.sandbox.server import serve

    webhook = _sandbox_webhook(webhook_url, webhook_secret)
    click.echo(
        f"sandbox incident.io on http://{host}:{port} (key {api_key!r}, seed {seed}, "
        f"{incidents} incidents). Try:\n"
        f"  curl -g -H 'Authorization: Bearer {api_key}' "
        f"'http://{host}:{port}/v2/incidents?status_category[one_of]=live&page_size=250'",
        err=True,
    )
    serve(
        host=host,
        port=port,
        api_key=api_key,
        seed=seed,
        incidents=incidents,
        rate_limit_per_minute=rate_limit,
        webhook=webhook,
    )


def _sandbox_webhook(url: str | None, secret: str | None) -> WebhookTarget | None:
    """The sandbox's webhook target from its options, or a usage error naming the option."""
    if url is None:
        return None
    if not secret:
        raise click.BadParameter(
            "--webhook-url needs --webhook-secret (or AUTOMATIONS_WEBHOOK_SECRET): the "
            "whsec_... secret the receiver verifies with",
            param_hint="--webhook-secret",
        )
    from pydantic import SecretStr

    from automations.sandbox.webhook_sender import WebhookTarget

    try:
        return WebhookTarget(url, SecretStr(secret))
    except ValueError as exc:
        hint = "--webhook-secret" if "secret" in str(exc) else "--webhook-url"
        raise click.BadParameter(str(exc), param_hint=hint) from None


DEMO_CONFIG = "config/demo.toml"


@click.command(cls=Command)
@click.option(
    "--config",
    "config_path",
    **config_settings(
        lambda: Path(DEMO_CONFIG),
        DEMO_CONFIG,
        "The demo's rules (its URL, ledger and SMTP settings are replaced).",
    ),
)
@click.option(
    "--duration", type=click.FloatRange(min=1), default=None, help="Stop after N seconds."
)
@click.option(
    "--outbox",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("outbox"),
    show_default=True,
    help="Where the local SMTP server writes each message (.eml and .html).",
)
@click.option("--incidents", default=200, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve /healthz and /metrics on this port (0: any free port) instead of the file's.",
)
def demo(
    config_path: Path,
    duration: float | None,
    outbox: Path,
    incidents: int,
    metrics_port: int | None,
) -> None:
    """The sandbox, a local SMTP server and the daemon together: no API key, no network."""
    from automations.config import load_config
    from automations.demo import run_demo

    run_demo(
        load_config(config_path),
        outbox=outbox,
        duration=duration,
        incidents=incidents,
        metrics_port=metrics_port,
    )
