"""How ``plan`` and ``test-rule`` print planned actions: in words, or as JSON for scripts.

Each action shows why it is due, the exact request it would send
(``POST /v2/incidents/{id}/actions/edit`` and its body) and whom it would tell; a private
incident's actions reach only the channels with ``include_private``, and the text says
which were left out. Pure formatting: the actions come from the engine or ``offline.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from automations.config import Config
    from automations.rules.base import PlannedAction


def print_actions(
    actions: list[PlannedAction], as_json: bool, private_ok: frozenset[str] = frozenset()
) -> None:
    """``private_ok``: the channels with include_private, the only ones a private incident's
    actions are announced to."""
    import json

    if as_json:
        click.echo(json.dumps([_action_json(a, private_ok) for a in actions], indent=2))
        return
    if not actions:
        click.echo("nothing to do")
        return
    for action in actions:
        click.echo(f"{action.incident_reference} {action.incident_name!r}  [{action.rule}]")
        click.echo(f"  why:  {action.reason}")
        if action.edit is not None:
            body = json.dumps(action.request_body())
            click.echo(f"  edit: POST /v2/incidents/{action.incident_id}/actions/edit {body}")
        channels = _notified(action, private_ok)
        if channels:
            click.echo(f"  notify: {', '.join(channels)}")
        if len(channels) < len(action.notify):
            left = ", ".join(c for c in action.notify if c not in channels)
            click.echo(f"  not notified (private incident, no include_private): {left}")
        if action.announce:
            click.echo(f"  announce (incident update): {action.announce}")


def include_private_channels(config: Config) -> frozenset[str]:
    return frozenset(channel.name for channel in config.channels if channel.include_private)


def _notified(action: PlannedAction, private_ok: frozenset[str]) -> list[str]:
    """The channels an applied action would reach: a private incident only include_private."""
    return [c for c in action.notify if not action.incident_private or c in private_ok]


def _action_json(action: PlannedAction, private_ok: frozenset[str]) -> dict[str, Any]:
    return {
        "rule": action.rule,
        "incident_id": action.incident_id,
        "incident_reference": action.incident_reference,
        "incident_name": action.incident_name,
        "event_key": action.event_key,
        "reason": action.reason,
        "effect": action.effect,
        "request": None
        if action.edit is None
        else {
            "method": "POST",
            "path": f"/v2/incidents/{action.incident_id}/actions/edit",
            "body": action.request_body(),
        },
        "notify": _notified(action, private_ok),
        "announce": action.announce,
    }


def kept_locally(rule: str, kept: int, fetched: int) -> str:
    """What where.team_ids cost: the API cannot filter by team, so it is done here."""
    return (
        f"rule {rule}: where.team_ids kept {kept} of {fetched} incidents fetched (teams are "
        "filtered locally, after fetching: GET /v2/incidents has no team filter)"
    )
