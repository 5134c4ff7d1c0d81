"""Command line: the composition root. Imports are lazy so ``--help`` and ``validate`` stay fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from automations import __version__
from automations.cli_options import Group, config_option, config_settings
from automations.errors import AutomationsError
from automations.ledger_cli import ledger
from automations.notify.cli import notify

if TYPE_CHECKING:
    from automations.config import Config
    from automations.cycle_report import CycleReport
    from automations.rules.base import PlannedAction
    from automations.runtime import Runtime
    from automations.sandbox.webhook_sender import WebhookTarget


@click.group(cls=Group)
@click.version_option(__version__, prog_name="automations")
def cli() -> None:
    """Run incident.io automations without Slack.

    --config, --log-level and --log-format go before or after the command's name.
    """


cli.add_command(notify)
cli.add_command(ledger)


def _load(config_path: Path) -> Config:
    from automations.config import load_config

    return load_config(config_path)


def _api_key() -> Any:
    from automations.settings import Environment

    return Environment().api_key()


@cli.command()
@config_option
@click.option(
    "--offline",
    is_flag=True,
    help="Check the file and templates only: no API, no secrets (names and the SMTP password "
    "are not checked).",
)
def validate(config_path: Path, offline: bool) -> None:
    """Check a config file, reporting every problem at once: the file, digest templates and,
    unless --offline, every name against the API and the SMTP password."""
    from automations.checks import check_config

    config = _load(config_path)
    if offline:
        check_config(config, None, None)
    else:
        from automations.runtime import load_catalog, make_client
        from automations.settings import Environment

        with make_client(config, _api_key(), interactive=True) as client:
            catalog = load_catalog(client, None)
            check_config(config, catalog, Environment(), client=client)
    from automations.store import config_location, store_label

    ledger = store_label(config_location(config))  # a URL's password is never shown
    where = "offline" if offline else "names resolved against the API"
    click.echo(f"{config_path}: ok ({len(config.rules)} rules; {where})")
    click.echo(f"ledger: {ledger}")


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the config file, for editors."""
    from automations.config import config_json_schema

    click.echo(json.dumps(config_json_schema(), indent=2))


@cli.command(name="rules")
def list_rules() -> None:
    """List the installed rule types and their options."""
    from automations.rules.base import RuleOptions
    from automations.rules.registry import RuleRegistry

    common = set(RuleOptions.model_fields)
    for name, cls in RuleRegistry().load_all().items():
        click.echo(f"{name}: {cls.summary}")
        for key, info in cls.options_model.model_fields.items():
            if key in common:
                continue
            required = " (required)" if info.is_required() else ""
            click.echo(f"  {key}{required}: {info.description or ''}")
    click.echo("every rule also takes: " + ", ".join(sorted(common - {"type"})))


def _print_actions(
    actions: list[PlannedAction], as_json: bool, private_ok: frozenset[str] = frozenset()
) -> None:
    """``private_ok``: the channels with include_private, the only ones a private incident's
    actions are announced to."""
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


def _private_ok(config: Config) -> frozenset[str]:
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


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--rule", "only", default=None, help="Only this rule.")
def plan(config_path: Path, as_json: bool, only: str | None) -> None:
    """The dry run: print each edit that would be made now, and why. Changes nothing."""
    from automations.recovery import never_run_hints

    config = _load(config_path)
    with _reading_runtime(config, only) as runtime:
        actions, report = runtime.engine.plan(runtime.rules)
        hints = never_run_hints(runtime.ledger, report)
        pause = runtime.ledger.kill_switch.paused()
    _print_actions(actions, as_json, _private_ok(config))
    for hint in hints:
        click.echo(hint, err=True)
    for outcome in report.rules:
        if outcome.kept_locally is not None:
            click.echo(_kept_locally(outcome.rule, *outcome.kept_locally), err=True)
        for action, reason in outcome.skipped:
            click.echo(f"{action.incident_reference} [{action.rule}] {reason}", err=True)
        if outcome.braked:
            click.echo(
                f"safety brake: rule {outcome.rule} would stop after "
                f"{len(outcome.planned)} edits ({outcome.brake}); {outcome.braked} more held back",
                err=True,
            )
    if pause is not None:
        click.echo(
            f"the automations are {pause.describe()}: nothing is applied until "
            "`automations resume`",
            err=True,
        )


def _reading_runtime(config: Config, only: str | None) -> Runtime:
    """plan's and adopt's runtime: a person waits (an unreachable API fails within seconds),
    and no lock is taken, so they work while the daemon runs on the same ledger."""
    from automations.runtime import Runtime

    return Runtime.start(config, lock=False, interactive=True, reading=True, only=only)


def _kept_locally(rule: str, kept: int, fetched: int) -> str:
    """What where.team_ids cost: the API cannot filter by team, so it is done here."""
    return (
        f"rule {rule}: where.team_ids kept {kept} of {fetched} incidents fetched (teams are "
        "filtered locally, after fetching: GET /v2/incidents has no team filter)"
    )


def _report_failed(reports: list[CycleReport]) -> bool:
    return any(not r.ok for r in reports)


@cli.command()
@config_option
def once(config_path: Path) -> None:
    """One cycle of every rule, then exit (for cron); exit 1 if anything failed.

    On PostgreSQL it takes the leader lock for the run, and exits 75 while a daemon leads."""
    from automations.daemon import run_once
    from automations.leadership import lend_guard, sole_actor
    from automations.runtime import Runtime, reconcile_at_startup

    config = _load(config_path)
    with sole_actor(config) as guard, Runtime.start(config, lock=True) as runtime:
        lend_guard(guard, runtime.engine, runtime.notifications)
        settled = reconcile_at_startup(runtime.engine)
        if settled is None:  # unreachable: logged; the next run settles the claims first
            sys.exit(1)
        reports = run_once(runtime)
        # Digests need the API too: after an unreachable answer they wait for the next run.
        unreachable = any(r.unreachable for r in reports)
        digests_ok = unreachable or _send_due_digests(runtime, guard)
        notifications_ok = _deliver_notifications(runtime)
    unsettled = any(outcome == "failed" for _, outcome in settled)
    if _report_failed(reports) or not digests_ok or unsettled or not notifications_ok:
        sys.exit(1)


def _deliver_notifications(runtime: Any) -> bool:
    """`once` sends the notifications that are due before it exits (what fails for now stays
    queued for the next run); False if one failed or expired for good."""
    from automations.daemon import deliver_notifications

    deliveries = deliver_notifications(runtime.ledger, runtime.notifications)
    return not any(d.outcome in ("failed", "expired") for d in deliveries)


def _send_due_digests(runtime: Any, guard: Any = None) -> bool:
    """`once` also queues a digest whose cron occurrence is due (within its grace) and sends
    whatever the outbox holds; False if a digest could not be built or sent."""
    if not runtime.config.digests:
        return True
    from automations.pause import digests_paused

    if digests_paused(runtime.ledger, "digests"):
        return True  # held, not failed: sent (within their grace) after `automations resume`

    from automations.leadership import lend_guard

    digests = runtime.digests
    lend_guard(guard, digests.outbox if digests is not None else None)
    return digests is None or digests.tick()


@cli.command()
@config_option
def run(config_path: Path) -> None:
    """Run the daemon: every rule on its schedule until SIGTERM or Ctrl-C.

    On PostgreSQL several may run: one leads and acts, the others stand by to take over."""
    from automations.daemon import Daemon
    from automations.leadership import election_for
    from automations.runtime import Runtime

    config = _load(config_path)
    with Runtime.start(config, lock=True) as runtime:
        Daemon(runtime, leadership=election_for(config)).run()


@cli.command()
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

    config = _load(config_path)
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


@cli.command()
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
    from automations.clock import ledger_clock
    from automations.history import check_rule, cutoff, event_json, existing_ledger, parse_since
    from automations.recovery import rearmed_line

    config = _load(config_path)
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


@cli.command()
@config_option
@click.option("--rule", "only", default=None, help="Only this rule (e.g. one just added).")
@click.option("--json", "as_json", is_flag=True)
def adopt(config_path: Path, only: str | None, as_json: bool) -> None:
    """Start on an existing organisation: record every action due now as skipped
    ("baseline"), so only incidents that become due later are acted on. Edits nothing."""
    from automations.recovery import adopt as adopt_rules

    config = _load(config_path)
    with _reading_runtime(config, only) as runtime:
        results = adopt_rules(runtime.engine, runtime.rules)
    if as_json:
        click.echo(json.dumps([r.json() for r in results], indent=2))
    else:
        for result in results:
            click.echo(result.line())
    if any(r.failure is not None for r in results):
        sys.exit(1)


@cli.command()
@config_option
@click.option("--reason", default="", help="Why, shown in every cycle line and by plan.")
def pause(config_path: Path, reason: str) -> None:
    """Stop every effect now: no edit, no digest mail, until `automations resume`.

    The daemon keeps running: each cycle still polls and logs what it would do. Works
    while the daemon runs (it reads the flag in the ledger every cycle) and needs no API key.
    """
    from automations.pause import pause_automations

    click.echo(pause_automations(_load(config_path), reason))


@cli.command()
@config_option
def resume(config_path: Path) -> None:
    """Undo `automations pause`: the next cycle applies what is due."""
    from automations.pause import resume_automations

    click.echo(resume_automations(_load(config_path)))


@cli.command(name="test-rule")
@config_option
@click.argument("rule")
@click.option(
    "--incidents",
    "incidents_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON: a saved GET /v2/incidents page, or a list of incidents.",
)
@click.option("--now", "now_text", default=None, help="Evaluate as of this time (ISO 8601).")
@click.option("--json", "as_json", is_flag=True)
def test_rule(
    config_path: Path, rule: str, incidents_file: Path, now_text: str | None, as_json: bool
) -> None:
    """Evaluate one rule offline against saved incidents and print what it would do."""
    from automations.offline import evaluate_offline

    config = _load(config_path)
    actions = evaluate_offline(config, rule, incidents_file, now_text)
    _print_actions(
        actions, as_json, frozenset(c.name for c in config.channels if c.include_private)
    )


@cli.command()
@config_option
def healthcheck(config_path: Path) -> None:
    """Ask the running daemon's /healthz (Docker's HEALTHCHECK); exit 0 when healthy."""
    from automations.errors import ConfigError
    from automations.health_client import ask

    server = _load(config_path).server
    if not server.enabled:
        raise ConfigError(f"{config_path}: [server] enabled is false, so there is nothing to ask")
    healthy, reason = ask(server.host, server.port)
    if not healthy:
        click.echo(f"unhealthy: {reason}", err=True)
        sys.exit(1)
    click.echo(reason)


@cli.command()
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


@cli.command()
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
    from automations.demo import run_demo

    run_demo(
        _load(config_path),
        outbox=outbox,
        duration=duration,
        incidents=incidents,
        metrics_port=metrics_port,
    )


@cli.group()
def digest() -> None:
    """Email digests: preview one, or send one now."""


def _digest_runtime(config_path: Path, *, need_ledger: bool) -> Any:
    """A runtime for digest commands; without a ledger file, an in-memory one (no side effect)."""
    import dataclasses

    from automations.config import StoreSettings
    from automations.runtime import Runtime
    from automations.store import ledger_exists

    config = _load(config_path)
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
    from automations.clock import host_now
    from automations.digest.status import digest_statuses
    from automations.store import ledger_exists, open_ledger

    config = _load(config_path)
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


def main() -> None:
    """Entry point: our errors become one line and their exit code, never a traceback."""
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except AutomationsError as exc:
        click.echo(f"error: {_explain(exc)}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def _explain(exc: AutomationsError) -> str:
    """A refused key or an unreachable API in words that say what to do; others as they are."""
    from automations.errors import APIAccessDenied, APIUnavailable

    if isinstance(exc, APIAccessDenied):
        from automations.incidentio.explain import explain_access_denied
        from automations.settings import Environment

        return explain_access_denied(exc, Environment().api_key_source())
    if isinstance(exc, APIUnavailable):
        from automations.incidentio.explain import explain_unavailable

        return explain_unavailable(exc)
    return str(exc)
