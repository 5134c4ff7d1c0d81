"""``automations digest preview|send|status``: one digest rendered, sent now, or reported.

``preview`` renders from current data and sends nothing (an in-memory ledger when
there is no ledger file, so it leaves no trace); ``send`` goes through the outbox like
a scheduled digest (``--to``: to those addresses only, not recorded); ``status`` reads
the file and the ledger only. The work is in ``digest/service.py`` and
``digest/status.py``; this module wires the options and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from automations.cli_options import Group, config_option


@click.group(cls=Group)
def digest() -> None:
    """Email digests: preview one, or send one now."""


def _digest_runtime(config_path: Path, *, need_ledger: bool) -> Any:
    """A runtime for digest commands; without a ledger file, an in-memory one (no side effect)."""
    import dataclasses

    from automations.config import StoreSettings, load_config
    from automations.runtime import Runtime
    from automations.store import ledger_exists

    config = load_config(config_path)
    if not config.digests:
        from automations.errors import ConfigError

        raise ConfigError(f"{config_path}: no [[digests]] configured")
    if not need_ledger and not ledger_exists(config):
        config = dataclasses.replace(config, store=StoreSettings(path=Path(":memory:")))
    return Runtime.start(config, lock=False, interactive=True)


@digest.command(name="preview")
@config_option
@click.argument("name")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the HTML part here (e.g. digest.html); otherwise print the text part.",
)
def digest_preview(config_path: Path, name: str, out: Path | None) -> None:
    """Render digest NAME from current data. Sends nothing, queues nothing."""
    from automations.digest.service import Digests

    with _digest_runtime(config_path, need_ledger=False) as runtime:
        rendered = Digests.from_runtime(runtime).preview(name)
    click.echo(f"Subject: {rendered.subject}", err=True)
    if out is None:
        click.echo(rendered.text, nl=False)
        return
    out.write_text(rendered.html, encoding="utf-8")
    size = len(rendered.html.encode("utf-8"))
    click.echo(f"wrote {out} ({size:,} bytes of HTML)", err=True)


@digest.command(name="send")
@config_option
@click.argument("name")
@click.option(
    "--to",
    "to",
    multiple=True,
    help="Send only to this address (repeat for more: one message to all), and do not record "
    "it as the period's digest.",
)
def digest_send(config_path: Path, name: str, to: tuple[str, ...]) -> None:
    """Send digest NAME now; it goes through the outbox like a scheduled one (unless --to)."""
    from automations.errors import DeliveryError
    from automations.ledger import OutboxState

    with _digest_runtime(config_path, need_ledger=True) as runtime:
        digests = runtime.digests
        assert digests is not None  # _digest_runtime refused a config without digests
        delivery = digests.send_now(name, to=list(to) or None)
    if to:
        click.echo(f"digest {name}: sent to {', '.join(to)} (not recorded as a scheduled digest)")
    elif delivery is not None and delivery.outcome == OutboxState.SENT:
        click.echo(f"digest {name} for {delivery.period}: sent")
    elif delivery is not None and delivery.outcome == OutboxState.PENDING:
        raise DeliveryError(
            f"digest {name} for {delivery.period}: not sent ({delivery.error}); it stays "
            "queued and the daemon (or `automations once`) retries it"
        )
    else:
        error = delivery.error if delivery is not None else "unknown"
        raise DeliveryError(f"digest {name}: refused by the server, not retried: {error}")


@digest.command(name="status")
@config_option
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--limit",
    default=10,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Outbox entries shown per digest, the newest.",
)
def digest_status(config_path: Path, name: str | None, as_json: bool, limit: int) -> None:
    """Each digest (or NAME): schedule, next send, last sent period and outbox entries.

    Reads the file and the ledger only (no API, no SMTP); times in the digest's zone and UTC.
    """
    import json

    from automations.clock import host_now
    from automations.config import load_config
    from automations.digest.status import digest_statuses
    from automations.store import ledger_exists, open_ledger

    config = load_config(config_path)
    ledger = open_ledger(config) if ledger_exists(config) else None
    try:
        statuses = digest_statuses(config, ledger, host_now(), name, limit)
    finally:
        if ledger is not None:
            ledger.close()
    if as_json:
        click.echo(json.dumps([status.json() for status in statuses], indent=2))
        return
    if not statuses:
        click.echo(f"{config_path}: no [[digests]] configured")
    for index, status in enumerate(statuses):
        if index:
            click.echo()
        for line in status.lines():
            click.echo(line)
