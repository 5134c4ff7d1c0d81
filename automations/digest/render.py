"""DigestData -> subject, plain text and HTML, with Jinja and css-inline.

HTML templates autoescape (incident names are untrusted text); every template
uses ``StrictUndefined`` so a typo is an error, not a blank. Templates and
subjects come from the configuration, so they render in Jinja's immutable
sandbox (automations/template_files.py): ``cycler.__init__.__globals__.os`` and the
like (a shell, the API key in the environment) are refused as unsafe, and the refusal is
a ConfigError. Templates come from ``templates_dir`` first, then the shipped ones (the
top-level ``templates/`` folder), so a team can override one file or ``{% extends %}``
the built-in one.

Mail clients clip messages near 102 KB (Gmail shows "[Message clipped]"), so
the HTML is kept under ``HTML_LIMIT``: rendered with ``max_rows`` rows, and if
it is still too big (very long names, many sections), again with fewer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from automations.digest.content import DigestData, limit_rows, one_line
from automations.durations import human_span
from automations.errors import ConfigError

HTML_LIMIT = 100_000
SUBJECT_LIMIT = 200


@dataclass(frozen=True)
class Rendered:
    """A digest ready to become a message."""

    subject: str
    text: str
    html: str
    data: DigestData  # the view that was rendered (rows limited)


def human_duration(delta: timedelta | None) -> str:
    """'3d 4h', '2h 5m', '12m' (durations.human_span), or '-' when unknown."""
    return "-" if delta is None else human_span(delta)


class Renderer:
    """One digest's templates and filters (times shown in the digest's timezone)."""

    def __init__(self, template: str, zone: ZoneInfo, templates_dir: Path | None = None) -> None:
        from jinja2 import StrictUndefined
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        from automations.template_files import template_environment

        self.zone = zone
        self.html_name = f"{template}.html.j2"
        self.text_name = f"{template}.txt.j2"
        self.env = template_environment(templates_dir)
        # Subjects are headers, not HTML: no escaping; one_line() makes them safe.
        self.subject_env = ImmutableSandboxedEnvironment(
            undefined=StrictUndefined, autoescape=False
        )
        for env in (self.env, self.subject_env):
            env.filters.update(
                when=self.when, day=self.day, clock=self.clock, dur=human_duration, zone=self.tz
            )

    # -- filters ------------------------------------------------------------------------

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)

    def when(self, moment: datetime) -> str:
        """'Mon 23 Nov 08:00'."""
        return self.local(moment).strftime("%a %d %b %H:%M")

    def day(self, moment: datetime) -> str:
        """'Mon 23 Nov 2026'."""
        return self.local(moment).strftime("%a %d %b %Y")

    def clock(self, moment: datetime) -> str:
        return self.local(moment).strftime("%H:%M")

    def tz(self, moment: datetime) -> str:
        """'GMT', 'BST', 'CET': the abbreviation in force at that moment."""
        return self.local(moment).tzname() or str(self.zone)

    # -- rendering ----------------------------------------------------------------------

    def check(self) -> None:
        """Load both templates now, so a missing or broken one fails at start-up."""
        from jinja2 import TemplateError, TemplateNotFound

        for name in (self.html_name, self.text_name):
            try:
                self.env.get_template(name)
            except TemplateNotFound:
                raise ConfigError(f"template {name!r} not found") from None
            except TemplateError as exc:
                raise ConfigError(f"template {name!r}: {exc}") from None

    def render(self, data: DigestData, subject: str, max_rows: int) -> Rendered:
        """Subject, text and inlined HTML under HTML_LIMIT, shrinking the rows if needed."""
        rows = max_rows
        while True:
            view = limit_rows(data, rows)
            html = self._template(data.name, self.html_name, self._html, view)
            size = len(html.encode("utf-8"))
            if size <= HTML_LIMIT or rows == 0:
                break
            # Proportional, with a margin; always at least one row fewer.
            rows = max(0, min(rows - 1, int(rows * HTML_LIMIT * 0.95 / size)))
        text = self._template(
            data.name, self.text_name, self.env.get_template(self.text_name).render, view
        )
        title = self._template(
            data.name, "subject", self.subject_env.from_string(subject).render, view
        )
        return Rendered(subject=one_line(title, SUBJECT_LIMIT), text=text, html=html, data=view)

    @staticmethod
    def _template(digest: str, what: str, render: Callable[..., str], view: DigestData) -> str:
        """``render(digest=view)``, a template error becoming a ConfigError naming its source."""
        from jinja2 import TemplateError
        from jinja2.exceptions import SecurityError

        try:
            return render(digest=view)
        except SecurityError as exc:
            raise ConfigError(
                f"rendering digest {digest!r}: {what}: {exc} (templates and subjects run in "
                "Jinja's sandbox: no attribute that starts with '_', no changing values)"
            ) from None
        except TemplateError as exc:
            raise ConfigError(f"rendering digest {digest!r}: {what}: {exc}") from exc

    def _html(self, digest: DigestData) -> str:
        import css_inline

        raw = self.env.get_template(self.html_name).render(digest=digest)
        # keep_at_rules: the @media blocks (narrow, dark) stay in <style>; the rest is inlined
        # for clients that drop <style> (older Gmail apps, some webmail).
        inliner = css_inline.CSSInliner(
            keep_at_rules=True, minify_css=True, load_remote_stylesheets=False
        )
        return inliner.inline(raw)
