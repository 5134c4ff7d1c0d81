"""``automations demo``: the sandbox, a local SMTP sink and the daemon, in one process.

Nothing leaves the machine: the sandbox serves incident.io on a free port of
127.0.0.1, the SMTP sink writes each message to ``./outbox/``, and the ledger
lives in a fresh temporary directory, so every demo starts from the same story.
The sandbox clock runs fast (``time_warp``) so incidents keep becoming due
while you watch. Each escalation is announced to the config's channels: mail
lands in ``./outbox/``, and webhook channels are pointed at a local receiver
that verifies each signature and writes the delivery to ``./outbox/webhooks/``
(a fresh signing secret per run, set in the environment as a user would). With
``[webhooks] enabled`` the sandbox sends incident.io's webhooks to the daemon,
and the demo makes a change that only a webhook brings in time (demo_reaction.py).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import os
import tempfile
import threading
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import Any

import click
import httpx
from pydantic import SecretStr

from automations.config import Config, StoreSettings
from automations.daemon import Daemon
from automations.demo_reaction import Reaction
from automations.notify.config import WebhookChannel, env_prefix
from automations.runtime import Runtime
from automations.sandbox import SandboxConfig, SandboxThread
from automations.sandbox.smtp_sink import SMTPSink
from automations.sandbox.webhook_sink import WebhookSink
from automations.webhooks.config import SECRET_VARIABLE

log = logging.getLogger(__name__)


class ClockWarp:
    """Moves the sandbox clock forward in steps, so time passes faster in the story."""

    def __init__(self, base_url: str, *, every_seconds: float, advance_seconds: float) -> None:
        self.base_url = base_url
        self.every_seconds = every_seconds
        self.advance_seconds = advance_seconds
        self.stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-clock", daemon=True)

    def start(self) -> ClockWarp:
        if self.advance_seconds > 0:
            self._thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as control:
            while not self.stopped.wait(self.every_seconds):
                control.post("/_sandbox/clock", json={"advance_seconds": self.advance_seconds})


def demo_config(
    config: Config,
    *,
    base_url: str,
    state_dir: Path,
    smtp_port: int,
    metrics_port: int | None = None,
    webhook_url: str | None = None,
) -> Config:
    """The file's rules, pointed at this run's sandbox, ledger, SMTP sink and webhook sink.

    ``metrics_port`` (``--metrics-port``; 0 for any free port) turns /metrics on there;
    otherwise the file's port is used, or any free one if it is taken.
    """
    changes: dict[str, object] = {
        # The sandbox's clock runs fast on purpose (ClockWarp): follow it however far it gets.
        "incident_io": config.incident_io.model_copy(
            update={"base_url": base_url, "max_clock_skew": None}
        ),
        "store": StoreSettings(path=state_dir / "demo.db"),
    }
    if metrics_port is not None:
        changes["server"] = config.server.model_copy(update={"enabled": True, "port": metrics_port})
    elif config.server.enabled and not _port_free(config.server.host, config.server.port):
        changes["server"] = config.server.model_copy(update={"port": 0})
    smtp = config.smtp
    if smtp is not None:
        changes["smtp"] = smtp.model_copy(
            update={"host": "127.0.0.1", "port": smtp_port, "security": "none", "username": None}
        )
    if webhook_url is not None:
        changes["channels"] = tuple(
            channel.model_copy(update={"url": webhook_url})
            if isinstance(channel, WebhookChannel)
            else channel
            for channel in config.channels
        )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def fresh_webhook_secret() -> str:
    """A new Standard Webhooks secret (``whsec_`` + base64 of 32 random bytes)."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def _demo_webhook_secret(config: Config) -> str:
    """One fresh secret for every webhook channel, in the environment the channels read."""
    secret = fresh_webhook_secret()
    for channel in config.channels:
        if isinstance(channel, WebhookChannel):
            os.environ[env_prefix(channel.name) + "SECRET"] = secret
    return secret


def _webhook_reaction(config: Config, sandbox: SandboxThread) -> Reaction | None:
    """With ``[webhooks] enabled``: the sandbox will send to the daemon, signed with a fresh
    secret that the daemon reads from the environment, as in production."""
    if not config.webhooks.enabled:
        return None
    secret = fresh_webhook_secret()
    os.environ[SECRET_VARIABLE] = secret
    return Reaction(sandbox, config, secret)


def _announce_hook(reaction: Reaction | None, path: Path, payload: dict[str, Any]) -> None:
    data = payload.get("data")
    incident = data.get("incident") if isinstance(data, dict) else None
    reference = incident.get("reference") if isinstance(incident, dict) else "-"
    click.secho(
        f"  webhook: {payload.get('type')} {reference} (signature verified)", fg="cyan", err=True
    )
    click.secho(f"        written to {path}", fg="cyan", err=True)
    if reaction is not None:
        reaction.on_delivery(path, payload)


def _port_free(host: str, port: int) -> bool:
    """The demo's metrics port is taken (a second demo?): then any free port will do."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _announce_mail(path: Path, message: EmailMessage) -> None:
    html = path.with_suffix(".html")
    shown = html if html.exists() else path
    click.secho(f"  mail: {message['Subject']!s} -> {message['To']!s}", fg="cyan", err=True)
    click.secho(f"        written to {shown}", fg="cyan", err=True)


def _narrative_logging() -> None:
    """Short lines a person can follow: the time and what happened (JSON stays JSON)."""
    from automations.logs import JSONFormatter

    for handler in logging.getLogger().handlers:
        if not isinstance(handler.formatter, JSONFormatter):
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: one line per SMTP verb


def _digest_after_first_cycle(daemon: Daemon) -> None:
    """A digest right after the first cycle shows what the automations just did, at once."""

    def send() -> None:
        while not daemon.stopping.is_set():
            if daemon.first_cycle_done.wait(0.2):
                if not daemon.stopping.is_set():  # the runtime closes once it is stopping
                    daemon.digest_jobs.send_now()
                return

    threading.Thread(target=send, name="demo-first-digest", daemon=True).start()


def run_demo(
    config: Config,
    *,
    outbox: Path,
    duration: float | None,
    incidents: int = 200,
    seed: int = 1,
    time_warp: float = 180.0,
    metrics_port: int | None = None,
) -> None:
    """Run until Ctrl-C/SIGTERM or ``duration`` seconds; everything stops cleanly."""
    _narrative_logging()
    with tempfile.TemporaryDirectory(prefix="automations-demo-") as tmp:
        sandbox = SandboxThread(SandboxConfig(seed=seed, incidents=incidents)).start()
        sink = SMTPSink(outbox, on_message=_announce_mail).start()
        reaction = _webhook_reaction(config, sandbox)
        hooks = WebhookSink(
            outbox / "webhooks",
            _demo_webhook_secret(config),
            on_delivery=partial(_announce_hook, reaction),
        ).start()
        warp = ClockWarp(sandbox.base_url, every_seconds=10, advance_seconds=time_warp).start()
        try:
            ready = demo_config(
                config,
                base_url=sandbox.base_url,
                state_dir=Path(tmp),
                smtp_port=sink.port,
                metrics_port=metrics_port,
                webhook_url=hooks.url,
            )
            click.secho(
                f"demo: sandbox incident.io at {sandbox.base_url} ({incidents} incidents, "
                f"its clock moving {time_warp:.0f}s every 10s), mail to {outbox}/, "
                f"webhooks to {outbox}/webhooks/",
                fg="green",
                err=True,
            )
            # The demo's ledger is its own file, whatever store the shell names.
            for variable in ("AUTOMATIONS_STORE_URL", "AUTOMATIONS_STORE_URL_FILE"):
                os.environ.pop(variable, None)
            api_key = SecretStr(sandbox.config.api_key)
            with Runtime.start(ready, lock=True, api_key=api_key) as runtime:
                daemon = Daemon(runtime)
                _digest_after_first_cycle(daemon)
                if reaction is not None:
                    reaction.start(daemon)
                if duration is not None:
                    timer = threading.Timer(duration, daemon.stopping.set)
                    timer.daemon = True
                    timer.start()
                daemon.run()
        finally:
            warp.stop()
            hooks.stop()
            sink.stop()
            sandbox.stop()
    click.secho("demo stopped", fg="green", err=True)
