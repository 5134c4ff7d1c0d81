"""The daemon's /healthz and /metrics: the metrics wired to the runtime, and the listener.

Called by ``Daemon.serve_health`` and ``Daemon.stop_health`` only when
``[server] enabled`` (nothing here is imported otherwise). The metrics listen
to the runtime's digest events and the notification outbox, are re-aimed after
a reload (a reload may add or remove rules), and are unhooked at stop; the
listener serves them, the webhook receiver if any, and the changes page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from automations.health_server import HealthServer
from automations.metrics import Metrics, default_stale_after

if TYPE_CHECKING:
    from automations.config import ServerSettings
    from automations.digest.events import DigestEvents
    from automations.digest.service import Digests
    from automations.notify.outbox import NotificationOutbox
    from automations.runtime import Runtime
    from automations.webhooks.service import WebhookService


def start_metrics(runtime: Runtime, notifications: NotificationOutbox | None) -> Metrics:
    """The daemon's metrics, listening to the client, the digests and the notifications."""
    settings = runtime.config.server
    stale_after = settings.stale_after or default_stale_after(runtime.rules)
    metrics = Metrics(stale_after=stale_after, expects_cycles=bool(runtime.rules))
    metrics.watch_client(runtime.client)
    # The runtime's, which a reload's digests keep: a reload may add digests.
    events = runtime.digest_events
    events.delivery_listeners.append(metrics.observe_digest)
    events.failure_listeners.append(metrics.observe_digest_failure)
    if notifications is not None and notifications.on_outcome is None:
        notifications.on_outcome = metrics.observe_notification
    return metrics


def start_server(
    settings: ServerSettings,
    metrics: Metrics,
    webhooks: WebhookService | None,
    digests: Callable[[], Digests | None],
) -> HealthServer:
    """The listener, started; ``digests`` is read on each request (a reload replaces them)."""
    from automations.digest.changes_page import ChangesPages

    return HealthServer(
        metrics,
        host=settings.host,
        port=settings.port,
        webhook=webhooks.receiver if webhooks is not None else None,
        pages=ChangesPages(digests),
    ).start()


def metrics_after_reload(metrics: Metrics, runtime: Runtime) -> None:
    """The reloaded rules decide whether cycles are expected, and (unless set) when stale."""
    metrics.expects_cycles = bool(runtime.rules)
    if runtime.config.server.stale_after is None:
        metrics.stale_after = default_stale_after(runtime.rules)


def stop_metrics(metrics: Metrics, events: DigestEvents) -> None:
    """The metrics stop listening to the digests (the runtime outlives the daemon)."""
    events.delivery_listeners.remove(metrics.observe_digest)
    events.failure_listeners.remove(metrics.observe_digest_failure)
