"""The webhook queue's consumer: a thread that re-reads each incident and runs the rules.

Fed from the ledger (``webhook_deliveries``), not from memory: it is woken when a
delivery is recorded, and at start it finds whatever an earlier process recorded
but did not process. Deliveries due together are taken as one batch, grouped by
incident, so ten changes to one incident cost one re-read. The evaluation is the
daemon's (``Daemon.evaluate_incidents``): under the cycles' lock, so it never
runs beside a cycle, on the same client (one rate-limit budget) and ledger.

What happens to a delivery:

- *processed*: its incident was re-read and judged (whatever the rules decided,
  held while paused), or the API says the incident or follow-up is gone (404);
- retried with backoff when the API could not be reached or the ledger failed,
  and *failed* after ``MAX_ATTEMPTS`` (the rules' polling cycles cover it);
- *failed* at once when the API refuses to show the incident (403: e.g. a
  private incident the key may not read).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta

from automations.backoff import Backoff
from automations.clock import Clock
from automations.cycle_report import IncidentsRun
from automations.errors import APIRejected, APIUnavailable, AutomationsError
from automations.failpoints import Failpoints
from automations.ledger.webhooks import (
    WebhookDelivery,
    WebhookDeliveryState,
    WebhookDeliveryStore,
)
from automations.webhooks.receiver import Observe

log = logging.getLogger(__name__)

Evaluate = Callable[[Mapping[str, bool], str], IncidentsRun | None]
ResolveFollowUp = Callable[[str], str]  # follow-up ID -> its incident's ID

BATCH = 100  # deliveries per evaluation: the cycles' lock is not held for long
IDLE = 5.0  # seconds between looks for postponed deliveries that came due
RETRY = Backoff(timedelta(seconds=15), timedelta(minutes=10))
MAX_ATTEMPTS = 8  # about an hour of retries; polling has long caught up by then
KEEP = timedelta(days=7)  # incident.io retries a delivery for about a day
PRUNE_EVERY = 3600.0  # seconds


class WebhookWorker:
    """Start with ``start()``; ``wake()`` after recording a delivery; ``stop()`` to end."""

    def __init__(
        self,
        deliveries: WebhookDeliveryStore,
        evaluate: Evaluate,
        resolve_follow_up: ResolveFollowUp,
        clock: Clock,
        stopping: threading.Event,
        *,
        observe: Observe | None = None,
        batch: int = BATCH,
        failpoints: Failpoints | None = None,
    ) -> None:
        self.deliveries = deliveries
        self.evaluate = evaluate
        self.resolve_follow_up = resolve_follow_up
        self.clock = clock
        self.stopping = stopping
        self.observe: Observe = observe or (lambda _type, _outcome: None)
        self.batch = batch
        self.failpoints = failpoints or Failpoints()  # tests crash before processing
        self._wake = threading.Event()
        self._pruned_at: float | None = None
        self._thread = threading.Thread(target=self._run, name="automations-webhooks", daemon=True)

    def start(self) -> WebhookWorker:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30) -> None:
        """Return once the batch in progress is done (the daemon's ``stopping`` is set)."""
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self.stopping.is_set():
            self._wake.clear()
            try:
                self.drain()
                self._prune()
            except AutomationsError as exc:  # the ledger failed: the rows wait, we go on
                log.error("webhooks: processing stopped, retrying in %.0fs: %s", IDLE, exc)
            except Exception:  # a bug must not end the thread: polling would be all that's left
                log.exception("webhooks: processing failed; retrying in %.0fs", IDLE)
            self._wake.wait(IDLE)

    def drain(self) -> int:
        """Process every delivery due now, batch by batch; how many were taken."""
        taken = 0
        while not self.stopping.is_set():
            due = self.deliveries.due(now=self.clock(), limit=self.batch)
            if not due or not self.process(due):
                break
            taken += len(due)
        return taken

    def process(self, deliveries: Sequence[WebhookDelivery]) -> bool:
        """One batch; False when nothing was done (the daemon is stopping): they stay queued."""
        self.failpoints.hit("before_webhook_processing")
        deliveries = self._resolve(deliveries)
        by_incident: dict[str, list[WebhookDelivery]] = defaultdict(list)
        for delivery in deliveries:
            assert delivery.incident_id is not None  # _resolve left only resolved ones
            by_incident[delivery.incident_id].append(delivery)
        if not by_incident:
            return True
        wanted = {
            incident_id: all(d.follow_up_id is not None for d in rows)
            for incident_id, rows in by_incident.items()
        }
        run = self.evaluate(wanted, "webhook")
        if run is None or run.report.stopped:
            return False
        if run.report.error is not None:
            self._postpone(deliveries, run.report.error)
            return True
        finished = []
        for incident_id, rows in by_incident.items():
            refusal = run.unreadable.get(incident_id)
            if refusal is None:
                finished += rows
            elif refusal.status == 404:
                self._finish(rows, WebhookDeliveryState.PROCESSED, f"incident gone: {refusal}")
            else:
                log.warning(
                    "webhook: the API would not show incident %s, so no rule judged it: %s",
                    incident_id,
                    refusal,
                )
                self._finish(rows, WebhookDeliveryState.FAILED, f"cannot read: {refusal}")
        self._finish(finished, WebhookDeliveryState.PROCESSED)
        self._log(deliveries, run)
        return True

    def _resolve(self, deliveries: Sequence[WebhookDelivery]) -> list[WebhookDelivery]:
        """A private follow-up event names only the follow-up: ask the API for its incident.

        Returns the deliveries whose incident is known; the others are finished or postponed.
        """
        ready = [d for d in deliveries if d.incident_id is not None]
        pending: dict[str, list[WebhookDelivery]] = defaultdict(list)
        for delivery in deliveries:
            if delivery.incident_id is None and delivery.follow_up_id is not None:
                pending[delivery.follow_up_id].append(delivery)
        nameless = [d for d in deliveries if d.incident_id is None and d.follow_up_id is None]
        if nameless:  # never recorded so (events.py): finished, so they cannot come due forever
            self._finish(nameless, WebhookDeliveryState.FAILED, "names no incident")
        for follow_up_id, rows in pending.items():
            try:
                incident_id = self.resolve_follow_up(follow_up_id)
            except APIUnavailable as exc:
                self._postpone(rows, str(exc))
                continue
            except APIRejected as exc:
                gone = exc.status == 404  # deleted: nothing to re-check
                state = WebhookDeliveryState.PROCESSED if gone else WebhookDeliveryState.FAILED
                self._finish(rows, state, f"cannot read the follow-up: {exc}")
                continue
            ids = [d.id for d in rows]
            self.deliveries.resolve_incident(ids, incident_id)
            ready += [replace(d, incident_id=incident_id) for d in rows]
        return sorted(ready, key=lambda d: d.id)

    def _finish(
        self,
        rows: Sequence[WebhookDelivery],
        state: WebhookDeliveryState,
        note: str | None = None,
    ) -> None:
        self.deliveries.finish([d.id for d in rows], state=state, now=self.clock(), error=note)
        for delivery in rows:
            self.observe(delivery.event_type, state.value)

    def _postpone(self, rows: Sequence[WebhookDelivery], error: str) -> None:
        """Not processed (the API or the ledger failed): again later, or failed for good."""
        last = [d for d in rows if d.attempts + 1 >= MAX_ATTEMPTS]
        again = [d for d in rows if d.attempts + 1 < MAX_ATTEMPTS]
        if last:
            log.error(
                "webhook: giving up on %d deliveries after %d attempts (%s); the rules' "
                "polling cycles cover their incidents",
                len(last),
                MAX_ATTEMPTS,
                error,
            )
            self._finish(last, WebhookDeliveryState.FAILED, f"gave up: {error}")
        if not again:
            return
        attempts = min(d.attempts for d in again) + 1
        delay = RETRY.after(attempts)
        self.deliveries.retry(
            [d.id for d in again], next_attempt_at=self.clock() + delay, error=error
        )
        for delivery in again:
            self.observe(delivery.event_type, "retry")
        log.warning(
            "webhook: %d deliveries not processed (%s); trying again in %ds",
            len(again),
            error,
            delay.total_seconds(),
        )

    def _log(self, deliveries: Sequence[WebhookDelivery], run: IncidentsRun) -> None:
        """One line per batch that did something; a quiet one otherwise."""
        report = run.report
        waited = (self.clock() - min(d.received_at for d in deliveries)).total_seconds()
        incidents = len({d.incident_id for d in deliveries})
        line = (
            f"webhook: {_count(len(deliveries), 'delivery', 'deliveries')} about "
            f"{_count(incidents, 'incident', 'incidents')}: "
            f"{report.incidents_seen} re-read, {report.planned} planned, "
            f"{report.applied} applied, {report.skipped} skipped, {report.failed} failed, "
            f"{report.api_requests} API requests; done {waited:.2f}s after the first arrived"
        )
        if report.paused is not None and any(rule.held for rule in report.rules):
            line += f"; PAUSED ({report.paused.describe()}): held back"
        busy = report.planned or report.failed or report.skipped
        log.log(logging.INFO if busy else logging.DEBUG, line, extra={"cycle": report.summary()})

    def _prune(self) -> None:
        """Forget finished deliveries after ``KEEP``, at most hourly."""
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        forgotten = self.deliveries.forget(before=self.clock() - KEEP)
        if forgotten:
            log.info("webhooks: forgot %d deliveries older than %d days", forgotten, KEEP.days)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"
