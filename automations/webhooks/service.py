"""The webhook parts a daemon runs: the receiver its listener serves, and the worker thread.

Built by ``Daemon.serve_health`` when ``[webhooks] enabled`` (the listener must
exist to receive); the worker starts after start-up reconciliation, so queued
deliveries from an earlier process are processed first thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from automations.webhooks.config import webhook_secrets
from automations.webhooks.receiver import WebhookReceiver
from automations.webhooks.verify import Verifier
from automations.webhooks.worker import WebhookWorker

if TYPE_CHECKING:
    from automations.daemon import Daemon


@dataclass
class WebhookService:
    receiver: WebhookReceiver
    worker: WebhookWorker

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()


def webhook_service(daemon: Daemon) -> WebhookService | None:
    """The daemon's receiver and worker; None unless ``[webhooks] enabled``."""
    runtime = daemon.runtime
    settings = runtime.config.webhooks
    if not settings.enabled:
        return None
    clock = runtime.engine.clock  # the API's time: it signs the deliveries (kept on reload)
    observe = daemon.metrics.observe_webhook if daemon.metrics is not None else None
    client = runtime.client  # kept on reload

    def resolve_follow_up(follow_up_id: str) -> str:
        return client.get_follow_up(follow_up_id).incident_id

    worker = WebhookWorker(
        runtime.ledger.webhooks,
        daemon.evaluate_incidents,
        resolve_follow_up,
        clock,
        daemon.stopping,
        observe=observe,
        failpoints=runtime.failpoints,
    )
    receiver = WebhookReceiver(
        path=settings.path,
        max_body_bytes=settings.max_body_bytes,
        verifier=Verifier(webhook_secrets(), clock, settings.tolerance),
        deliveries=runtime.ledger.webhooks,
        clock=clock,
        on_queued=worker.wake,
        observe=observe,
    )
    return WebhookService(receiver, worker)
