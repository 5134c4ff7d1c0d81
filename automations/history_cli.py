"""``automations history`` and ``automations retry``: what the ledger recorded, and failed
actions re-armed.

``history`` lists the events (with the notifications each queued), or with
``--notifications`` the deliveries alone; ``retry`` re-arms failed actions so the next
cycle re-checks them, keeping each event key. Both read the ledger only (no API); the
filtering and the formatting live in ``history.py``, this module only wires the options
to them and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from automations.cli_options import Command, config_option

if TYPE_CHECKING:
    from automations.config import Config


@click.command(cls=Command)
@config_option
@click.option("--rule", default=None, help="Only this rule.")
@click.option("--incident", default=None, help="Incident ID or reference, e.g. INC-123.")
@click.option("--since", default=None, help="Only events newer than this, e.g. 24h, 7d.")
@click.option(
    "--state",
    "states",
    multiple=True,
    help="Only events in this state (repeatable): planned, applied, skipped, failed, "
    "reconciled, rearmed. With --notifications: queued, sending, sent, failed, expired, held, "
    "summarised.",
)
@click.option(
    "--notifications",
    "deliveries",
    is_flag=True,
    help="List the notifications alone (newest first): channel, state, attempts, last error.",
)
@click.option("--channel", default=None, help="With --notifications: only this channel.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=200, show_default=True, type=click.IntRange(0, 10**9))
def history(
    config_path: Path,
    rule: str | None,
    incident: str | None,
    since: str | None,
    states: tuple[str, ...],
    deliveries: bool,
    channel: str | None,
    as_json: bool,
    limit: int,
) -> None:
    """What the automations did, and whom they told, from the ledger (times in UTC, ISO 8601)."""
    import json

    from automations.config import load_config
    from automations.history import (
        check_rule,
        cutoff,
        delivery_lines,
        event_json,
        event_lines,
        existing_ledger,
        notification_json,
        notifications_by_event,
        parse_since,
        parse_states,
        quarantine_lines,
    )

    config = load_config(config_path)
    if deliveries:
        _notification_history(config, rule, incident, since, states, channel, as_json, limit)
        return
    if channel is not None:
        raise click.UsageError("--channel goes with --notifications")
    age, wanted = parse_since(since), parse_states(states)
    with existing_ledger(config) as ledger:
        check_rule(config, ledger, rule)
        events = ledger.events.history(
            rule=rule, incident=incident, since=cutoff(ledger, age), states=wanted, limit=limit
        )
        sent = notifications_by_event(ledger, events)
        for line in quarantine_lines(ledger):
            click.echo(line, err=True)
    if as_json:
        rows = [
            {
                **event_json(e),
                "notifications": [notification_json(n) for n in sent.get(e.event_key, [])],
            }
            for e in events
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if not events:
        click.echo("no events")
    for event in events:
        for line in [*event_lines(event), *delivery_lines(event, sent.get(event.event_key, []))]:
            click.echo(line)


def _notification_history(
    config: Config,
    rule: str | None,
    incident: str | None,
    since: str | None,
    states: tuple[str, ...],
    channel: str | None,
    as_json: bool,
    limit: int,
) -> None:
    """``history --notifications``: the deliveries alone, of the events --rule/--incident pick."""
    import json

    from automations.history import (
        check_rule,
        cutoff,
        existing_ledger,
        notification_json,
        notification_lines,
        parse_notification_states,
        parse_since,
        quarantine_lines,
    )

    age, wanted = parse_since(since), parse_notification_states(states)
    with existing_ledger(config) as ledger:
        check_rule(config, ledger, rule)
        keys = None
        if rule is not None or incident is not None:
            keys = [e.event_key for e in ledger.events.history(rule=rule, incident=incident)]
        items = ledger.notifications.history(
            event_keys=keys,
            channel=channel,
            states=wanted,
            since=cutoff(ledger, age),
            limit=limit,
        )
        for line in quarantine_lines(ledger):
            click.echo(line, err=True)
    if as_json:
        click.echo(json.dumps([notification_json(n) for n in items], indent=2))
        return
    if not items:
        click.echo("no notifications")
    for item in items:
        for line in notification_lines(item):
            click.echo(line)


@click.command(cls=Command)
@config_option
@click.option("--rule", default=None, help="Only this rule's failed actions.")
@click.option("--incident", default=None, help="Incident ID or reference, e.g. INC-123.")
@click.option("--since", default=None, help="Only actions that failed since, e.g. 1d.")
@click.option("--json", "as_json", is_flag=True)
def retry(
    config_path: Path, rule: str | None, incident: str | None, since: str | None, as_json: bool
) -> None:
    """Re-arm failed actions: the next cycle re-checks each and applies it if still due.

    Nothing is sent now. Each keeps its event key, so it still happens at most once.
    """
    import json

    from automations.clock import ledger_clock
    from automations.config import load_config
    from automations.history import check_rule, cutoff, event_json, existing_ledger, parse_since
    from automations.recovery import rearmed_line

    config = load_config(config_path)
    age = parse_since(since)
    with existing_ledger(config) as ledger:
        check_rule(config, ledger, rule)
        events = ledger.events.rearm_failed(
            rule=rule, incident=incident, since=cutoff(ledger, age), now=ledger_clock(ledger.meta)()
        )
    if as_json:
        click.echo(json.dumps([event_json(e) for e in events], indent=2))
        return
    for event in events:
        click.echo(rearmed_line(event))
    if not events:
        click.echo("nothing to retry: no failed actions match")
    else:
        click.echo(
            f"{len(events)} failed action(s) re-armed; the next cycle (the daemon, or "
            "`automations once`) re-checks each and applies it if the rule still wants it"
        )
