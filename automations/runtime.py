"""Build the running parts from a config: client, ledger, catalog, rules, engine.

The one composition root: ``run``, ``once``, ``plan``, ``adopt``, ``digest`` and
``demo`` start through ``Runtime.start`` (``validate`` shares its client and
catalog), so they can never disagree about how a config turns into rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from pydantic import SecretStr

from automations.backoff import Backoff
from automations.catalog import Catalog
from automations.checks import check_config
from automations.clock import ServerClock, ledger_clock
from automations.closing import Closing
from automations.config import Config
from automations.digest.events import DigestEvents
from automations.engine import Engine
from automations.errors import APIError, APIUnavailable, ConfigError, Problems
from automations.failpoints import Failpoints
from automations.incidentio import IncidentIOClient, TokenBucket
from automations.incidentio.retries import DAEMON, INTERACTIVE, quiet_stamina_for_client
from automations.ledger import Event, Ledger
from automations.retention import Retention
from automations.rules.base import AnyRule
from automations.settings import Environment
from automations.store import open_ledger

if TYPE_CHECKING:
    from automations.digest.service import Digests
    from automations.notify.outbox import NotificationOutbox, OnOutcome
    from automations.notify.sender import ChannelPolicy, Sender

log = logging.getLogger(__name__)

# Notifications are urgent (a page, an escalation): retried soon, then at most every 10 minutes
# until sent or past the channel's expire_after.
NOTIFY_BACKOFF = Backoff(timedelta(seconds=30), timedelta(minutes=10))


def make_client(
    config: Config, api_key: SecretStr, *, interactive: bool = False
) -> IncidentIOClient:
    """The client; ``interactive`` (a person waiting: validate, plan, digest preview) gives up
    on an unreachable API within seconds, where a daemon keeps retrying for minutes.

    stamina's retry hooks are process-wide (it has no per-client ones): here, the one place
    clients are built, they are told once to leave this client's retries to its own log line.
    """
    quiet_stamina_for_client()
    settings = config.incident_io
    budget = INTERACTIVE if interactive else DAEMON
    return IncidentIOClient(
        base_url=settings.base_url,
        api_key=api_key,
        rate_limiter=TokenBucket(rate_per_minute=settings.requests_per_minute),
        timeout=min(settings.timeout_seconds, budget.request_timeout),
        connect_timeout=budget.connect_timeout,
        retry_attempts=min(settings.retry_attempts, budget.attempts),
        retry_timeout=budget.timeout,
        max_clock_skew=settings.max_clock_skew,
    )


def load_catalog(client: IncidentIOClient, ledger: Ledger | None) -> Catalog:
    """From the API, cached in the ledger; the cache is the fallback when the API is down.

    Only when it is down: a refused key (401, 403) is an error, not a reason to run on
    yesterday's names until every edit fails.
    """
    try:
        catalog = Catalog.fetch(client)
    except APIUnavailable as exc:
        cached = cached_catalog(ledger)
        if cached is None:
            raise
        log.warning("catalog: API unavailable (%s); using the copy cached in the ledger", exc)
        return cached
    if ledger is not None:
        for kind, items in catalog.to_cache().items():
            ledger.catalog.save(kind, items)
    return catalog


def cached_catalog(ledger: Ledger | None) -> Catalog | None:
    if ledger is None:
        return None
    data = {}
    for kind in Catalog.KINDS:
        found = ledger.catalog.load(kind)
        if found is None:
            return None
        data[kind] = found[0]
    return Catalog.from_cache(data)


def build_rules(config: Config, catalog: Catalog, *, only: str | None = None) -> list[AnyRule]:
    """Instantiate enabled rules with names resolved; one ConfigError lists every problem."""
    problems = Problems()
    rules = collect_rules(config, catalog, only, problems)
    problems.raise_if_any(config.path)
    return rules


def collect_rules(
    config: Config, catalog: Catalog, only: str | None, problems: Problems
) -> list[AnyRule]:
    """Every rule is checked (disabled ones too: their names are in the file); problems are
    added to ``problems`` under ``rules[i]``; enabled rules without problems are returned."""
    names = [r.name for r in config.rules]
    if only is not None and only not in names:
        raise ConfigError(f"{config.path}: no rule named {only!r}; rules: {', '.join(names)}")
    rules: list[AnyRule] = []
    for index, options in enumerate(config.rules):
        if only is not None and options.name != only:
            continue
        with problems.collect(f"rules[{index}]"):
            rule = config.rule_class(options)(options, catalog)
            rule.query()  # a plugin rule may resolve its names only here: not mid-cycle
            if options.enabled or only is not None:
                rules.append(rule)
    return rules


@dataclass
class Runtime(Closing):
    """Everything a command needs, built once."""

    config: Config
    client: IncidentIOClient
    ledger: Ledger
    catalog: Catalog
    rules: list[AnyRule]
    engine: Engine
    # The notification delivery loop (make_notification_outbox), when channels are configured.
    notifications: NotificationOutbox | None = None
    # The crash points every part with one is given (engine, outboxes, webhook worker).
    failpoints: Failpoints = field(default_factory=Failpoints)
    # Digest deliveries and failures, for the daemon's metrics; kept by a reload's digests.
    digest_events: DigestEvents = field(default_factory=DigestEvents)

    @cached_property
    def smtp_password(self) -> SecretStr | None:
        """From the environment (automations/settings.py), read once, when first needed: the
        digests' mailer and the email channels share it; a command that sends no mail never
        reads it."""
        return Environment().smtp_password()

    @cached_property
    def digests(self) -> Digests | None:
        """The configured digests and their mailer, built once, on first use; None when there
        are none. A ConfigError when ``smtp.username`` is set and the password is not."""
        if not self.config.digests:
            return None
        from automations.digest.config import smtp_password_problem
        from automations.digest.service import Digests

        problem = smtp_password_problem(self.config.smtp, self.smtp_password)
        if problem is not None:
            raise ConfigError.listing([problem], self.config.path)
        return Digests.from_runtime(self, self.smtp_password)

    def close(self) -> None:
        self.client.close()
        self.ledger.close()

    @classmethod
    def start(
        cls,
        config: Config,
        *,
        lock: bool,
        api_key: SecretStr | None = None,
        interactive: bool = False,
        reading: bool = False,
        only: str | None = None,
    ) -> Runtime:
        """The one way commands start: ``with Runtime.start(config, lock=True) as runtime:``.

        The API key comes from the environment (automations/settings.py) unless given (the
        demo's sandbox key); everything opened is closed when the block ends. ``reading``
        (plan, adopt; see build_runtime) needs ``lock=False``: they work beside a daemon.
        """
        if api_key is None:
            api_key = Environment().api_key()
        return build_runtime(
            config, api_key, lock=lock, interactive=interactive, reading=reading, only=only
        )


def build_runtime(
    config: Config,
    api_key: SecretStr,
    *,
    lock: bool,
    clock: Callable[[], datetime] | None = None,
    interactive: bool = False,
    failpoints: Failpoints | None = None,
    reading: bool = False,
    only: str | None = None,
) -> Runtime:
    """Open the ledger (locked for daemons), reconcile-ready engine, rules resolved.

    The whole file is checked first (check_config), so a bad digest stops ``once``
    or ``run`` before any rule acts; a locked runtime acts and sends, so it also
    needs the SMTP password when ``smtp.username`` is set. ``failpoints`` (tests) defaults
    to the ones ``AUTOMATIONS_FAILPOINTS`` names, read here once for the whole process.

    ``reading`` is for commands that read the API and edit nothing (plan, adopt): only the
    rules are checked (``only``: that one, even if disabled), and the catalog is neither
    cached in the ledger nor read from it.
    """
    if reading and lock:
        raise ValueError("a reading runtime never takes the one-daemon lock")
    if only is not None and not reading:
        raise ValueError("only a reading runtime (plan, adopt) runs a single rule")
    # Locked before SQLite opens the file: a refused process never touches the database.
    ledger = open_ledger(config, lock=lock)
    try:
        # API time, like the runs' own times (the offset the last process remembered).
        if lock and (interrupted := ledger.runs.close_interrupted(now=ledger_clock(ledger.meta)())):
            log.warning("start-up: %d runs were interrupted by a crash or kill", interrupted)
        client = make_client(config, api_key, interactive=interactive)
        try:
            if reading:
                catalog = load_catalog(client, None)
                rules = build_rules(config, catalog, only=only)
            else:
                catalog = load_catalog(client, ledger)
                rules = check_config(config, catalog, Environment() if lock else None)
        except BaseException:
            client.close()
            raise
    except BaseException:
        ledger.close()
        raise
    clock = clock or ServerClock(client, ledger.meta)
    if failpoints is None:
        failpoints = Failpoints.from_environment()
    engine = make_engine(
        config, client, ledger, catalog, rules, clock, failpoints, prune=not reading
    )
    runtime = Runtime(config, client, ledger, catalog, rules, engine, failpoints=failpoints)
    if lock and (config.channels or any(rule.options.announce for rule in rules)):
        try:
            runtime.notifications = notification_outbox(runtime)
        except BaseException:  # e.g. an escalation path the API does not know
            runtime.close()
            raise
    return runtime


def notification_outbox(runtime: Runtime) -> NotificationOutbox:
    """The configured channels' senders (and the incident timeline's), behind one outbox."""
    from automations.notify.channels.build import build_senders

    config = runtime.config
    senders = build_senders(config, runtime.client, smtp_password=runtime.smtp_password)
    return make_notification_outbox(runtime, senders, {c.name: c for c in config.channels})


def make_engine(
    config: Config,
    client: IncidentIOClient,
    ledger: Ledger,
    catalog: Catalog,
    rules: list[AnyRule],
    clock: Callable[[], datetime],
    failpoints: Failpoints,
    *,
    prune: bool = True,
) -> Engine:
    """The engine of a daemon or `once` (and of a reload): it prunes the ledger too, unless
    ``prune`` is False (plan, adopt: they run no cycle and leave the ledger's age alone)."""
    retention = Retention(config.store.retention, rules, catalog) if prune else None
    channels = {channel.name: channel for channel in config.channels}
    return Engine(
        client,
        ledger,
        catalog,
        clock=clock,
        retention=retention,
        channels=channels,
        failpoints=failpoints,
    )


def reconcile_at_startup(engine: Engine) -> list[tuple[Event, str]] | None:
    """Settle what an interrupted run left claimed; None when the API could not be reached.

    Unreachable is not fatal: the claims stay unconfirmed, and every cycle settles
    them first (``Engine.run_cycle``), so no edit is sent before they are settled.
    """
    try:
        settled = engine.reconcile()
    except APIError as exc:
        left = len(engine.ledger.events.unconfirmed())
        log.error(
            "start-up: %d unconfirmed claims not settled, the API is unreachable (%s); nothing "
            "is edited until the next cycle (or run) settles them",
            left,
            exc,
        )
        return None
    if settled:
        log.warning("start-up: settled %d unconfirmed events from an interrupted run", len(settled))
    return settled


def make_notification_outbox(
    runtime: Runtime,
    senders: Mapping[str, Sender],
    policies: Mapping[str, ChannelPolicy],
    *,
    on_outcome: OnOutcome | None = None,
) -> NotificationOutbox:
    """The delivery loop of a daemon or ``once``: the one place it is built.

    ``senders`` and ``policies`` are the configured channels by name (a Sender and its
    options each). The engine's clock (API time) is the one the rows were queued by, so
    expiry and ``max_per_hour`` measure against the same "now".
    """
    from automations.notify.outbox import NotificationOutbox

    return NotificationOutbox(
        runtime.ledger,
        senders,
        policies,
        runtime.engine.clock,
        NOTIFY_BACKOFF,
        on_outcome=on_outcome,
        failpoints=runtime.failpoints,
    )
