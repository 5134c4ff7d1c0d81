"""The apprise channel: one notice to each of its URLs (msteams://, ntfy://, json://, ...).

apprise is imported only here, when a URL is checked or a sender built (it costs
~150 ms and loads every plugin on first use). Its URLs usually carry tokens, so a
message about one names its position and scheme only, and apprise's own log lines
pass through a filter that removes every part of the channel's URLs.

apprise answers a failed send with False, whatever the reason, so every failure is
NotifyRetryable (the outbox gives up at the channel's ``expire_after``). Each URL is
notified on its own; a retry in the same process skips the URLs that already took the
notice, so one service being down does not repeat it on the others.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

from automations.errors import NotifyRetryable
from automations.incidentio.redaction import Redactor
from automations.notify.notice import Notice
from automations.notify.render import NoticeTemplates
from automations.text import one_line

if TYPE_CHECKING:
    from apprise.plugins.base import NotifyBase

APPRISE_LOGGER = "apprise"
TITLE_LIMIT = 250
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]{0,31})://")
_SHORTEST_SECRET = 4  # URL parts shorter than this are left in apprise's log lines
_REMEMBERED = 1000  # keys whose partly-delivered URLs a sender remembers


def scheme_of(url: str) -> str | None:
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else None


def apprise_url_problem(url: str) -> str | None:
    """Why apprise cannot use ``url`` (naming its scheme only), or None when it can."""
    import apprise

    scheme = scheme_of(url)
    if scheme is None:
        return "is not an apprise URL like ntfy://ntfy.sh/ops-alerts (no scheme://)"
    with _quiet():
        plugin = apprise.Apprise.instantiate(url)
    if plugin is not None:
        return None
    if scheme in apprise.NotificationManager():  # type: ignore[no-untyped-call]
        return (
            f"apprise cannot use this {scheme}:// URL: a part is missing or malformed "
            f"(see apprise's page for {scheme}://)"
        )
    return (
        f"{scheme}:// is not a scheme apprise knows, nor a service's own URL it recognises "
        "(see apprise's list of services)"
    )


def url_secrets(url: str) -> list[str]:
    """Every part of an apprise URL but its scheme: any of them may be a token."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [url, parts.netloc, parts.path, parts.query]
    userinfo, _, host = parts.netloc.rpartition("@")
    found += [*userinfo.split(":"), host, *parts.path.split("/")]
    found += [value for _, value in parse_qsl(parts.query)]
    found = [unquote(p) for p in found] + found
    return [p for p in found if len(p) >= _SHORTEST_SECRET]


class _RedactingFilter(logging.Filter):
    """On apprise's logger: every line without the channels' URL parts."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._redactor = Redactor()

    def add(self, urls: Sequence[str]) -> None:
        with self._lock:
            for url in urls:
                self._secrets.update(url_secrets(url))
            self._redactor = Redactor(self._secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redactor.clean(record.getMessage(), limit=1000)
        record.args = ()
        return True


def redact_apprise_logs(urls: Sequence[str]) -> None:
    """apprise's log lines (its DEBUG ones print whole URLs) never show these URLs' parts."""
    logger = logging.getLogger(APPRISE_LOGGER)
    found = [f for f in logger.filters if isinstance(f, _RedactingFilter)]
    redacting = found[0] if found else _RedactingFilter()
    if not found:
        logger.addFilter(redacting)
    redacting.add(urls)


@contextmanager
def _quiet() -> Iterator[None]:
    """Checking a URL: apprise logs it (tokens included) when it cannot parse it."""
    logger = logging.getLogger(APPRISE_LOGGER)
    was = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = was


class _Captured(logging.Handler):
    """apprise's warnings during one send: the only reason it gives for a failure."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class AppriseSender:
    """Sends a title and a Markdown body to each URL with apprise."""

    def __init__(
        self,
        channel: str,
        urls: Sequence[str],
        labels: Sequence[str],
        templates: NoticeTemplates,
        timeout_seconds: float,
    ) -> None:
        """``labels`` name each URL in messages (``urls[0]``), never its content."""
        import apprise

        redact_apprise_logs(urls)
        self.channel = channel
        pairs = zip(labels, urls, strict=True)
        self.labels = [f"{label} ({scheme_of(url)}://)" for label, url in pairs]
        self.templates = templates
        self._plugins: list[NotifyBase] = []
        for url in urls:
            with _quiet():
                plugin = apprise.Apprise.instantiate(url)
            if plugin is None:  # checked at load; the environment's URLs by the builder
                raise ValueError("an apprise URL that was checked no longer parses")
            # apprise's own defaults are 4 s each; the channel's timeout is the bound.
            plugin.socket_connect_timeout = timeout_seconds
            plugin.socket_read_timeout = timeout_seconds
            self._plugins.append(plugin)
        self._delivered: OrderedDict[str, set[int]] = OrderedDict()

    def __repr__(self) -> str:  # never the URLs
        return f"<AppriseSender {self.channel}: {len(self._plugins)} URLs>"

    def send(self, notice: Notice, *, key: str) -> None:
        import apprise

        title = one_line(self.templates.render("title", notice), TITLE_LIMIT)
        body = self.templates.render("md", notice)
        done = self._delivered.setdefault(key, set())
        self._delivered.move_to_end(key)
        while len(self._delivered) > _REMEMBERED:
            self._delivered.popitem(last=False)
        failed: list[str] = []
        for index, plugin in enumerate(self._plugins):
            if index in done:
                continue
            captured = _Captured()
            logger = logging.getLogger(APPRISE_LOGGER)
            logger.addHandler(captured)
            try:
                sender = apprise.Apprise()
                sender.add(plugin)
                ok = bool(
                    sender.notify(title=title, body=body, body_format=apprise.NotifyFormat.MARKDOWN)
                )
            except Exception as exc:  # a plugin bug must not stop the delivery loop
                ok = False
                captured.lines.append(f"{type(exc).__name__}")
            finally:
                logger.removeHandler(captured)
            if ok:
                done.add(index)
            else:
                why = "; ".join(dict.fromkeys(captured.lines)) or "apprise gave no reason"
                failed.append(f"{self.labels[index]}: {why}")
        if failed:
            raise NotifyRetryable(
                f"apprise channel {self.channel}: {len(failed)} of {len(self._plugins)} URLs "
                f"failed: {' | '.join(failed)}"
            )
        self._delivered.pop(key, None)


def parse_url_list(text: str) -> list[str]:
    """``AUTOMATIONS_CHANNEL_<NAME>_URLS``: URLs separated by whitespace."""
    return text.split()
