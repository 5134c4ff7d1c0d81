"""SIGHUP: build everything the edited config file describes, beside the running one.

``prepare_reload`` loads the file, resolves every name against the catalog and
builds the rules and digests exactly as start-up does; any error is raised
before the daemon has changed anything, so a bad file leaves the old config
running. The connection tables stay as they were started (the client, the
locked ledger, the health server and the mailer keep running): a change there
is reported and takes effect on the next restart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from automations.checks import check_config
from automations.config import load_config
from automations.runtime import Runtime, load_catalog, make_engine
from automations.settings import Environment

if TYPE_CHECKING:
    from automations.digest.service import Digests

# [[channels]] hold senders (connections, secrets, resolved escalation paths) built once.
RESTART_ONLY = ("incident_io", "store", "server", "smtp", "channels", "webhooks")


@dataclass(frozen=True)
class Reloaded:
    """The replacement, ready to swap in, and the tables whose change waits for a restart."""

    runtime: Runtime
    digests: Digests | None
    restart_needed: list[str]


def prepare_reload(running: Runtime) -> Reloaded:
    """Everything from the file again, on the running client and ledger; raises on any error."""
    config = load_config(running.config.path)
    changed = [
        name for name in RESTART_ONLY if getattr(config, name) != getattr(running.config, name)
    ]
    kept = {name: getattr(running.config, name) for name in RESTART_ONLY}
    config = dataclasses.replace(config, **kept)
    catalog = load_catalog(running.client, running.ledger)  # names added since start resolve
    rules = check_config(config, catalog, Environment())  # every problem of the file at once
    engine = make_engine(
        config,
        running.client,
        running.ledger,
        catalog,
        rules,
        running.engine.clock,
        running.failpoints,
    )
    runtime = Runtime(
        config,
        running.client,
        running.ledger,
        catalog,
        rules,
        engine,
        notifications=running.notifications,
        failpoints=running.failpoints,
        digest_events=running.digest_events,
    )
    # Built now (the SMTP password read again, like every secret of the file just checked), so
    # a refused digest leaves the old config running.
    return Reloaded(runtime, runtime.digests, [f"[{name}]" for name in changed])
