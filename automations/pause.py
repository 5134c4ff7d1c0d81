"""The kill switch: ``automations pause`` stops every effect without stopping the daemon.

One command an on-call engineer can run at 3 am, next to the daemon or
anywhere the ledger file is reachable (``docker exec ... automations pause``):
it needs the config (to find the ledger) but no API key, and works while the
daemon runs. The flag lives in the ledger, so it holds across restarts and for
``once`` run by cron too. While paused, every cycle still polls, evaluates and
logs what it would do ("PAUSED, not applied: ...") and its cycle line says
PAUSED; no edit is claimed or sent, and no digest is queued or mailed (a digest
whose time passed during the pause is caught up within its grace after
``automations resume``).
"""

from __future__ import annotations

import getpass
import logging
import socket

from automations.clock import ledger_clock
from automations.config import Config
from automations.ledger import Ledger
from automations.store import config_location, ledger_exists, open_ledger, store_label
from automations.text import one_line

log = logging.getLogger(__name__)


def who() -> str:
    """user@host of whoever runs the command, for the record."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def pause_automations(config: Config, reason: str) -> str:
    """Set the flag; the line to print."""
    location = config_location(config)
    existed = isinstance(location, str) or location.exists()
    with open_ledger(config) as ledger:
        pause = ledger.kill_switch.pause(
            by=who(), reason=one_line(reason), now=ledger_clock(ledger.meta)()
        )
    text = (
        f"{pause.describe()}: the automations using ledger {store_label(location)} apply no "
        "edit and send no digest from their next cycle on (the daemon keeps polling and "
        "logging what it would do); `automations resume` undoes it"
    )
    if not existed:
        text += (
            f". Note: {store_label(location)} did not exist and was created; if a daemon runs, "
            "check that this is its config"
        )
    return text


def resume_automations(config: Config) -> str:
    location = config_location(config)
    if not ledger_exists(config):
        return f"not paused: there is no ledger at {store_label(location)}"
    with open_ledger(config) as ledger:
        cleared = ledger.kill_switch.resume()
    if cleared is None:
        return f"not paused (ledger {store_label(location)}): nothing to resume"
    return f"resumed (was {cleared.describe()}): the next cycle applies what is due"


def digests_paused(ledger: Ledger, what: str, *, quiet: bool = False) -> bool:
    """True when the automations are paused, so ``what`` (a digest job) must wait; says so
    in the log unless ``quiet`` (the outbox job, every 30 seconds)."""
    pause = ledger.kill_switch.paused()
    if pause is None:
        return False
    if not quiet:
        log.warning("%s: not sent, the automations are %s", what, pause.describe())
    return True
