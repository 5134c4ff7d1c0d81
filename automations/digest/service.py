"""Every configured digest, wired: what the daemon schedules and the CLI calls.

``run_due`` is the one entry point for scheduled sending. The cron job, the
outbox's periodic check and start-up all ask the same question, "is the
latest occurrence within the grace already queued?", so a run missed while
the daemon was down is sent once, and a late or repeated trigger is harmless.
Only occurrences after the ledger first scheduled the digest count: a new
ledger's first start does not send a "missed" digest.

Both times come from ``automations.clock``: ``clock`` is the host's (cron
periods and the outbox: what APScheduler fires on), ``data_clock`` the
product's "now", the API's time that the engine uses (ages, windows), so a
skewed host or the sandbox's moved clock does not misdate incidents.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from automations.backoff import Backoff
from automations.catalog import Catalog
from automations.clock import Clock, host_now
from automations.config import Config
from automations.digest.config import (
    DigestOptions,
    address_part,
    check_address,
    no_such_digest,
)
from automations.digest.content import DigestData, build_digest
from automations.digest.delivery import Mailer
from automations.digest.events import DigestEvents
from automations.digest.fetch import digest_filter, fetch_incidents, fetch_since
from automations.digest.follow_ups_fetch import follow_up_span, follow_ups_section
from automations.digest.message import build_message, new_message_id
from automations.digest.oncall_fetch import oncall_section, resolve_schedules
from automations.digest.outbox import Delivery, DigestOutbox
from automations.digest.render import Rendered, Renderer
from automations.digest.schedule import Schedule, in_future, period_instant, period_key
from automations.digest.templates import template_renderer
from automations.digest.trends import cadence, trend_window
from automations.errors import APIError, ConfigError, DeliveryError, LedgerError, Problems
from automations.failpoints import Failpoints
from automations.incidentio import Incident, IncidentFilter, IncidentIOClient
from automations.ledger import Ledger, OutboxState

if TYPE_CHECKING:
    from automations.runtime import Runtime

log = logging.getLogger(__name__)

MAX_WINDOW = timedelta(days=31)  # a digest re-enabled after months is not a history report
_SUPERSEDED = (OutboxState.EXPIRED, OutboxState.FAILED)


@dataclass(frozen=True)
class DigestJob:
    """One ``[[digests]]`` entry with its names resolved and templates loaded."""

    index: int
    options: DigestOptions
    schedule: Schedule
    renderer: Renderer
    query: IncidentFilter

    @property
    def name(self) -> str:
        return self.options.name


class Digests:
    """Build, render, queue and deliver the configured digests."""

    def __init__(
        self,
        config: Config,
        client: IncidentIOClient,
        ledger: Ledger,
        catalog: Catalog,
        *,
        mailer: Mailer | None,
        clock: Clock = host_now,
        data_clock: Clock | None = None,
        events: DigestEvents | None = None,
        failpoints: Failpoints | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.ledger = ledger
        self.catalog = catalog
        self.mailer = mailer
        self.clock = clock
        self.data_clock = data_clock or clock
        self.events = events or DigestEvents()  # deliveries and failures: metrics listen
        self.jobs = resolve_digests(config, catalog)
        smtp = config.smtp
        backoff = (
            Backoff(smtp.retry_backoff, smtp.retry_backoff_max)
            if smtp is not None
            else Backoff(timedelta(minutes=1), timedelta(minutes=30))
        )
        self.outbox = DigestOutbox(
            ledger, mailer, backoff, clock, events=self.events, failpoints=failpoints
        )
        self._future_reported: set[tuple[str, str]] = set()  # (digest, time) warned about
        self._unreadable: set[tuple[str, str, int | None]] = set()  # sections warned about
        jobs = ((job.index, job.options) for job in self.jobs.values())
        self.schedule_ids = resolve_schedules(config.path, client, jobs)

    @classmethod
    def from_runtime(
        cls,
        runtime: Runtime,
        password: SecretStr | None = None,
        *,
        clock: Clock = host_now,
    ) -> Digests:
        """The runtime's digests: SMTP from the config, the API's clock for the data, the
        runtime's listeners and crash points."""
        smtp = runtime.config.smtp
        mailer = Mailer(smtp, password) if smtp is not None else None
        return cls(
            runtime.config,
            runtime.client,
            runtime.ledger,
            runtime.catalog,
            mailer=mailer,
            clock=clock,
            data_clock=runtime.engine.clock,
            events=runtime.digest_events,
            failpoints=runtime.failpoints,
        )

    # -- lookup -------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Enabled digests: the ones that are scheduled."""
        return [name for name, job in self.jobs.items() if job.options.enabled]

    def job(self, name: str) -> DigestJob:
        try:
            return self.jobs[name]
        except KeyError:
            raise no_such_digest(self.config.path, name, list(self.jobs)) from None

    # -- build and render -----------------------------------------------------------------

    def window_start(self, job: DigestJob, end: datetime) -> datetime:
        """Since the previous digest of this name (not expired or failed), else default_window."""
        earlier = [
            moment
            for period, state in self.ledger.outbox.periods(job.name)
            if state not in _SUPERSEDED
            and (moment := datetime.fromisoformat(period)).tzinfo is not None
            and moment < end
        ]
        start = max(earlier, default=end - job.options.default_window)
        return max(start, end - MAX_WINDOW)

    def compose(self, name: str, end: datetime) -> Rendered:
        """Fetch and render the digest for the window ending at ``end`` (host time)."""
        job = self.job(name)
        opts = job.options
        data_now = self.data_clock()
        shift = _clock_offset(data_now - self.clock())
        # The window in API time (the data's clock), as the incidents and the ledger keep it.
        window_start = self.window_start(job, end) + shift
        window_end = min(end + shift, data_now)
        with self.events.report_failures(name, "build"):
            trend = trend_window(opts, window_end) if "trends" in opts.sections else None
            since = fetch_since(window_start, trend)
            incidents = fetch_incidents(self.client, opts, job.query, since)
            events = self.ledger.events.history(since=window_start - timedelta(hours=1))
            data = build_digest(
                name=opts.name,
                timezone=str(opts.timezone),
                incidents=incidents,
                catalog=self.catalog,
                events=events,
                now=data_now,
                window_start=window_start,
                window_end=window_end,
                sections=opts.sections,
                include_private=opts.include_private,
                include_test=opts.include_test,
                categories=opts.where.status_category,
                trend=trend,
                cadence=cadence(job.schedule, window_end),
                changes_url=self.changes_url(name, window_start, window_end),
            )
            data = replace(data, **self._sections(job, incidents, since, data))
        with self.events.report_failures(name, "render"):
            return job.renderer.render(data, opts.subject, opts.max_incidents)

    def changes_url(self, name: str, start: datetime, end: datetime) -> str | None:
        """The daemon's page of every change in the window, if [server] public_url is set."""
        public_url = self.config.server.public_url
        if public_url is None:
            return None
        from automations.digest.changes import page_url

        return page_url(public_url, self.ledger.meta.link_key(), name, start, end)

    def _sections(
        self, job: DigestJob, incidents: list[Incident], read_since: datetime, data: DigestData
    ) -> dict[str, Any]:
        """The on-call and follow-ups sections, read only when shown (each a line if unreadable)."""
        opts, out = job.options, dict[str, Any]()
        if "oncall" in opts.sections:
            wanted = self.schedule_ids.get(opts.name, opts.schedules)
            out["oncall"] = oncall_section(
                self.client, opts, wanted, data.generated_at, self._unreadable
            )
        if "follow_ups" in opts.sections:
            out["follow_ups"] = follow_ups_section(
                self.client,
                opts,
                job.query,
                incidents,
                read_since=read_since,
                now=data.generated_at,
                window_start=data.window_start,
                window_end=data.window_end,
                incidents_url=data.incidents_url,
                warned=self._unreadable,
                span=follow_up_span(opts, data.window_end),
            )
        return out

    def preview(self, name: str) -> Rendered:
        """Render from current data; nothing is queued or sent."""
        return self.compose(name, self.clock())

    def message(
        self, name: str, rendered: Rendered, message_id: str, to: list[str] | None
    ) -> bytes:
        """The message bytes; ``to`` replaces the configured recipients (and drops cc)."""
        opts = self.job(name).options
        return build_message(
            sender=self._smtp_sender(),
            to=to if to is not None else list(opts.to),
            cc=list(opts.cc) if to is None else [],
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=message_id,
            date=self.clock(),
            digest=name,
        )

    def _smtp_sender(self) -> str:
        if self.config.smtp is None:
            raise ConfigError(f"{self.config.path}: digests need an [smtp] table to send")
        return self.config.smtp.sender

    # -- scheduled sending --------------------------------------------------------------

    def due(self, name: str) -> datetime | None:
        """The latest occurrence within the grace, unless it (or a later send) is queued.

        An occurrence from before this ledger first scheduled the digest was never
        missed, so the first start on a new ledger sends no catch-up: the first digest
        is the first occurrence after it. Times in the future (written while the host
        clock was ahead) cover nothing: they are reported once and ignored, or one start
        with the clock in 2027 would silence the digest until then.
        """
        job = self.job(name)
        now = self.clock()
        first = self.ledger.outbox.first_scheduled(name, now=now)
        floor = None if in_future(first, now) else first
        if floor is None:
            self._report_future(name, "says it was first scheduled at", first, now)
        latest = job.schedule.latest(now, job.options.catch_up_grace)
        if latest is None or (floor is not None and latest < floor):
            return None
        if self.ledger.outbox.find(name, period_key(latest, job.options.zone)) is not None:
            return None
        last = self._last_period(job, now)
        if last is not None and last >= latest:
            return None  # a `digest send` at or after this occurrence already covered it
        return latest

    def _last_period(self, job: DigestJob, now: datetime) -> datetime | None:
        """The latest period queued, leaving out (and reporting) those in the future."""
        last = None
        for period, _state in self.ledger.outbox.periods(job.name):
            moment = period_instant(period)
            if moment is None:
                continue
            if in_future(moment, now):
                self._report_future(job.name, "holds the period", moment, now)
            else:
                last = moment if last is None else max(last, moment)
        return last

    def _report_future(self, name: str, what: str, moment: datetime, now: datetime) -> None:
        """One warning per digest and time, however often ``due`` is asked."""
        zone = self.job(name).options.zone
        shown = period_key(moment, zone)
        if (name, shown) in self._future_reported:
            return
        self._future_reported.add((name, shown))
        log.warning(
            "digest %s: the ledger %s %s, in the future (now %s): written while the host "
            "clock was ahead, it does not count; real occurrences are sent as usual "
            "(`automations digest status` lists it)",
            name,
            what,
            shown,
            period_key(now, zone),
        )

    def enqueue(self, name: str, period: datetime) -> bool:
        """Render the digest for ``period`` once and queue it; False if it was already queued."""
        job = self.job(name)
        key = period_key(period, job.options.zone)
        if self.ledger.outbox.find(name, key) is not None:
            return False
        rendered = self.compose(name, period)
        with self.events.report_failures(name, "build"):
            message_id = new_message_id(self._smtp_sender(), name, key)
            message = self.message(name, rendered, message_id, None)
        queued = self.outbox.enqueue(
            digest=name,
            period=key,
            subject=rendered.subject,
            recipients=job.options.recipients,
            message=message,
            message_id=message_id,
            expire_after=job.options.expire_after,
        )
        if queued:
            f = rendered.data.figures
            log.info(
                "digest %s for %s queued: %d live, %d opened, %d resolved, %d actions; "
                "%d bytes of HTML",
                name,
                key,
                f.live,
                f.opened,
                f.resolved,
                f.actions,
                len(rendered.html.encode()),
            )
        return queued

    def run_due(self, name: str) -> bool:
        """Queue this digest if an occurrence is due; False when it could not be built."""
        period = self.due(name)
        if period is None:
            return True
        job = self.job(name)
        late = self.clock() - period
        if late > timedelta(minutes=5):
            log.warning(
                "digest %s: the run at %s was missed (%s late); sending it once now",
                name,
                period_key(period, job.options.zone),
                str(late).split(".")[0],
            )
        try:
            self.enqueue(name, period)
        except (APIError, LedgerError) as exc:
            log.error("digest %s: cannot build it now, will try again: %s", name, exc)
            return False
        except Exception as exc:  # a broken template, say: it must not hold back the others
            unexpected = not isinstance(exc, ConfigError)
            log.error("digest %s: cannot prepare it: %s", name, exc, exc_info=unexpected)
            return False
        return True

    def tick(self) -> bool:
        """Every enabled digest: queue what is due, then deliver what is due. True if all ok."""
        ok = True
        for name in self.names():
            ok = self.run_due(name) and ok
        try:
            deliveries = self.outbox.deliver_due()
        except LedgerError as exc:
            log.error("digest outbox: %s", exc)
            return False
        return ok and all(d.outcome == OutboxState.SENT for d in deliveries)

    def run_scheduled(self, name: str) -> None:
        """The cron job of one digest."""
        self.run_due(name)
        self.outbox.deliver_due()

    # -- sending by hand ----------------------------------------------------------------

    def send_now(self, name: str, to: Sequence[str] | None = None) -> Delivery | None:
        """Send now. With ``to``: one message to those addresses only, straight to SMTP, not
        recorded as a period."""
        job = self.job(name)
        if self.mailer is None:
            raise ConfigError(f"{self.config.path}: digests need an [smtp] table to send")
        now = self.clock()
        key = period_key(now, job.options.zone)
        if to:
            for address in to:
                try:
                    check_address(address)
                except ValueError as exc:
                    raise ConfigError(f"--to: {exc}") from None
            rendered = self.compose(name, now)
            message_id = new_message_id(self._smtp_sender(), name, f"test-{key}")
            message = self.message(name, rendered, message_id, list(to))
            self.mailer.send(message, [address_part(address) for address in to])
            return None
        if not self.enqueue(name, now):
            raise DeliveryError(f"digest {name} for {key} is already queued; try again in a second")
        return self.outbox.deliver(name, key)


def resolve_digests(
    config: Config, catalog: Catalog, problems: Problems | None = None
) -> dict[str, DigestJob]:
    """Every digest with names resolved and templates loaded; all problems in one error.

    With ``problems``, they are added there instead (the whole-file check gathers
    rules and digests together) and digests with a problem are left out.
    """
    found = Problems() if problems is None else problems
    jobs = {}
    for index, options in enumerate(config.digests):
        job = _resolve(index, options, catalog, found)
        if job is not None:
            jobs[options.name] = job
    if problems is None:
        found.raise_if_any(config.path)
    return jobs


def _resolve(
    index: int, options: DigestOptions, catalog: Catalog, problems: Problems
) -> DigestJob | None:
    """Names to IDs and templates loaded; each problem recorded with its key path."""
    query = None
    with problems.collect():
        query = digest_filter(options, catalog, f"digests[{index}]")
    renderer = template_renderer(index, options, problems)
    if query is None or renderer is None:
        return None
    return DigestJob(index, options, Schedule(options.cron, options.zone), renderer, query)


def _clock_offset(raw: timedelta) -> timedelta:
    """Host time -> API time, in whole minutes: the API's Date header has 1s resolution, so
    smaller offsets are noise that would print a window 'since 07:59' for an 08:00 digest."""
    return timedelta(minutes=round(raw / timedelta(minutes=1)))
