"""Command line: the composition root. Imports are lazy so ``--help`` and ``validate`` stay fast."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from automations import __version__
from automations.errors import AutomationsError

if TYPE_CHECKING:
    from automations.config import Config
    from automations.engine import CycleReport
    from automations.rules.base import PlannedAction

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_CONFIG = "config/automations.toml"


def config_option(func: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=lambda: os.environ.get("AUTOMATIONS_CONFIG", DEFAULT_CONFIG),
        show_default=f"$AUTOMATIONS_CONFIG or {DEFAULT_CONFIG}",
        help="The TOML file.",
    )(func)


@click.group()
@click.version_option(__version__, prog_name="automations")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option(
    "--log-format",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json"]),
    help="json: one JSON object per line.",
)
def cli(log_level: str, log_format: str) -> None:
    """Run incident.io automations without Slack."""
    from automations.logs import setup_logging

    setup_logging(log_level, log_format)


def _load(config_path: Path) -> Config:
    from automations.config import load_config

    return load_config(config_path)


def _api_key() -> Any:
    from automations.settings import Environment

    return Environment().api_key()


@cli.command()
@config_option
@click.option(
    "--offline", is_flag=True, help="Check the file only; do not resolve names via the API."
)
def validate(config_path: Path, offline: bool) -> None:
    """Check a config file (and, unless --offline, every name against the API)."""
    config = _load(config_path)
    if not offline:
        from automations.runtime import build_rules, load_catalog, make_client

        with make_client(config, _api_key()) as client:
            build_rules(config, load_catalog(client, None))
    where = "offline" if offline else "names resolved against the API"
    click.echo(f"{config_path}: ok ({len(config.rules)} rules; {where})")


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


def _print_actions(actions: list[PlannedAction], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([_action_json(a) for a in actions], indent=2))
        return
    if not actions:
        click.echo("nothing to do")
        return
    for action in actions:
        click.echo(f"{action.incident_reference} {action.incident_name!r}  [{action.rule}]")
        click.echo(f"  why:  {action.reason}")
        body = json.dumps(action.request_body())
        click.echo(f"  edit: POST /v2/incidents/{action.incident_id}/actions/edit {body}")


def _action_json(action: PlannedAction) -> dict[str, Any]:
    return {
        "rule": action.rule,
        "incident_id": action.incident_id,
        "incident_reference": action.incident_reference,
        "incident_name": action.incident_name,
        "event_key": action.event_key,
        "reason": action.reason,
        "request": {
            "method": "POST",
            "path": f"/v2/incidents/{action.incident_id}/actions/edit",
            "body": action.request_body(),
        },
    }


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--rule", "only", default=None, help="Only this rule.")
def plan(config_path: Path, as_json: bool, only: str | None) -> None:
    """The dry run: print each edit that would be made now, and why. Changes nothing."""
    from automations.catalog import Catalog
    from automations.clock import ServerClock
    from automations.engine import Engine
    from automations.ledger import Ledger
    from automations.runtime import build_rules, load_catalog, make_client

    config = _load(config_path)
    with make_client(config, _api_key()) as client, Ledger(config.store.path) as ledger:
        catalog: Catalog = load_catalog(client, None)
        rules = build_rules(config, catalog, only=only)
        engine = Engine(client, ledger, catalog, clock=ServerClock(client, ledger))
        actions, report = engine.plan(rules)
    _print_actions(actions, as_json)
    for outcome in report.rules:
        if outcome.braked:
            click.echo(
                f"safety brake: rule {outcome.rule} would stop after "
                f"{len(outcome.planned)} edits; {outcome.braked} more held back",
                err=True,
            )


def _report_failed(reports: list[CycleReport]) -> bool:
    return any(not r.ok for r in reports)


@cli.command()
@config_option
def once(config_path: Path) -> None:
    """One cycle of every rule, then exit (for cron); exit 1 if anything failed."""
    from automations.daemon import run_once
    from automations.runtime import build_runtime

    config = _load(config_path)
    runtime = build_runtime(config, _api_key(), lock=True)
    try:
        runtime.engine.reconcile()
        reports = run_once(runtime)
        digests_ok = _send_due_digests(runtime)
    finally:
        runtime.close()
    if _report_failed(reports) or not digests_ok:
        sys.exit(1)


def _send_due_digests(runtime: Any) -> bool:
    """`once` also queues a digest whose cron occurrence is due (within its grace) and sends
    whatever the outbox holds; False if a digest could not be built or sent."""
    if not runtime.config.digests:
        return True
    from automations.digest.service import digests_for

    digests = digests_for(runtime)
    return digests is None or digests.tick()


@cli.command()
@config_option
def run(config_path: Path) -> None:
    """Run the daemon: every rule on its schedule until SIGTERM or Ctrl-C."""
    from automations.daemon import Daemon
    from automations.runtime import build_runtime

    config = _load(config_path)
    runtime = build_runtime(config, _api_key(), lock=True)
    try:
        Daemon(runtime).run()
    finally:
        runtime.close()


@cli.command()
@config_option
@click.option("--rule", default=None, help="Only this rule.")
@click.option("--incident", default=None, help="Incident ID or reference, e.g. INC-123.")
@click.option("--since", default=None, help="Only events newer than this, e.g. 24h, 7d.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=200, show_default=True, type=int)
def history(
    config_path: Path,
    rule: str | None,
    incident: str | None,
    since: str | None,
    as_json: bool,
    limit: int,
) -> None:
    """What the automations did, from the ledger."""
    from automations.clock import ledger_clock
    from automations.durations import parse_duration
    from automations.errors import ConfigError
    from automations.ledger import Ledger

    config = _load(config_path)
    try:
        age = None if since is None else parse_duration(since)
    except ValueError as exc:
        raise ConfigError(f"--since: {exc}") from None
    if not config.store.path.exists():
        raise ConfigError(f"{config.store.path}: no ledger yet (nothing has run with this config)")
    with Ledger(config.store.path) as ledger:
        # The daemon's "now" (API time), not the host's: the ledger's times are API times.
        cutoff = None if age is None else ledger_clock(ledger)() - age
        events = ledger.events(rule=rule, incident=incident, since=cutoff, limit=limit)
    if as_json:
        click.echo(json.dumps([_event_json(e) for e in events], indent=2, default=str))
        return
    if not events:
        click.echo("no events")
    for event in events:
        when = event.claimed_at.strftime("%Y-%m-%d %H:%M:%SZ")
        ref = event.incident_reference
        click.echo(f"{when} {event.state.value:<10} {ref:<9} {event.rule}: {event.reason}")
        if event.error:
            click.echo(f"{'':>31}error: {event.error}")


def _event_json(event: Any) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(event)
    data["state"] = event.state.value
    return data


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
    _print_actions(actions, as_json)


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
def sandbox(host: str, port: int, api_key: str, seed: int, incidents: int, rate_limit: int) -> None:
    """Serve a faithful incident.io simulator (no account, no network)."""
    from automations.sandbox.server import serve

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
    )


@cli.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("config/demo.toml"),
    show_default=True,
    help="The demo's rules (its URL, ledger and SMTP settings are replaced).",
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
def demo(config_path: Path, duration: float | None, outbox: Path, incidents: int) -> None:
    """The sandbox, a local SMTP server and the daemon together: no API key, no network."""
    from automations.demo import run_demo

    run_demo(_load(config_path), outbox=outbox, duration=duration, incidents=incidents)


@cli.group()
def digest() -> None:
    """Email digests: preview one, or send one now."""


def _digest_runtime(config_path: Path, *, need_ledger: bool) -> Any:
    """A runtime for digest commands; without a ledger file, an in-memory one (no side effect)."""
    import dataclasses

    from automations.config import StoreSettings
    from automations.runtime import build_runtime

    config = _load(config_path)
    if not config.digests:
        from automations.errors import ConfigError

        raise ConfigError(f"{config_path}: no [[digests]] configured")
    if not need_ledger and not config.store.path.exists():
        config = dataclasses.replace(config, store=StoreSettings(path=Path(":memory:")))
    return build_runtime(config, _api_key(), lock=False)


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

    runtime = _digest_runtime(config_path, need_ledger=False)
    try:
        rendered = Digests.from_runtime(runtime).preview(name)
    finally:
        runtime.close()
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
    default=None,
    help="Send only to this address, and do not record it as the period's digest.",
)
def digest_send(config_path: Path, name: str, to: str | None) -> None:
    """Send digest NAME now; it goes through the outbox like a scheduled one (unless --to)."""
    from automations.digest.service import digests_for
    from automations.errors import DeliveryError
    from automations.ledger import OutboxState

    runtime = _digest_runtime(config_path, need_ledger=True)
    try:
        digests = digests_for(runtime)
        assert digests is not None  # _digest_runtime refused a config without digests
        delivery = digests.send_now(name, to=to)
    finally:
        runtime.close()
    if to is not None:
        click.echo(f"digest {name}: sent to {to} (not recorded as a scheduled digest)")
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
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
