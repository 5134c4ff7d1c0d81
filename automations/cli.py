"""Command line: the composition root. Imports are lazy so ``--help`` and ``validate`` stay fast."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from automations import __version__
from automations.cli_options import Group, config_option
from automations.demo_cli import demo, sandbox
from automations.digest.cli import digest
from automations.errors import AutomationsError
from automations.history_cli import history, retry
from automations.ledger_cli import ledger
from automations.notify.cli import notify

if TYPE_CHECKING:
    from automations.config import Config
    from automations.cycle_report import CycleReport
    from automations.runtime import Runtime


@click.group(cls=Group)
@click.version_option(__version__, prog_name="automations")
def cli() -> None:
    """Run incident.io automations without Slack.

    --config, --log-level and --log-format go before or after the command's name.
    """


cli.add_command(notify)
cli.add_command(ledger)
cli.add_command(history)
cli.add_command(retry)
cli.add_command(digest)
cli.add_command(sandbox)
cli.add_command(demo)


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
    import json

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


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--rule", "only", default=None, help="Only this rule.")
def plan(config_path: Path, as_json: bool, only: str | None) -> None:
    """The dry run: print each edit that would be made now, and why. Changes nothing."""
    from automations.plan_output import include_private_channels, kept_locally, print_actions
    from automations.recovery import never_run_hints

    config = _load(config_path)
    with _reading_runtime(config, only) as runtime:
        actions, report = runtime.engine.plan(runtime.rules)
        hints = never_run_hints(runtime.ledger, report)
        pause = runtime.ledger.kill_switch.paused()
    print_actions(actions, as_json, include_private_channels(config))
    for hint in hints:
        click.echo(hint, err=True)
    for outcome in report.rules:
        if outcome.kept_locally is not None:
            click.echo(kept_locally(outcome.rule, *outcome.kept_locally), err=True)
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
    from automations.notify.jobs import deliver_notifications

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
@click.option("--rule", "only", default=None, help="Only this rule (e.g. one just added).")
@click.option("--json", "as_json", is_flag=True)
def adopt(config_path: Path, only: str | None, as_json: bool) -> None:
    """Start on an existing organisation: record every action due now as skipped
    ("baseline"), so only incidents that become due later are acted on. Edits nothing."""
    import json

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
    from automations.plan_output import print_actions

    config = _load(config_path)
    actions = evaluate_offline(config, rule, incidents_file, now_text)
    print_actions(actions, as_json, frozenset(c.name for c in config.channels if c.include_private))


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
