"""A notice in a channel's words: its templates (templates/notify/), overridable per channel.

Each channel type has one template per part (``email.subject.j2``, ``email.txt.j2``,
``email.html.j2``, ``apprise.title.j2``, ``apprise.md.j2``, ``escalation.title.j2``,
``escalation.md.j2``), each wording every event type through ``_notice.j2``. A file
``{type}.{event}.{part}.j2`` (e.g. ``email.action.applied.txt.j2``) in a channel's
``templates_dir`` replaces the part for that event only; ``{type}.{part}.j2`` there
replaces it for all. Templates run in Jinja's sandbox with ``StrictUndefined``; HTML
autoescapes, and Markdown parts pass incident text through ``md``.

``check`` renders every part for a sample of every event type at start-up, so a
broken template is a ConfigError then; at send time a template error is final for
that notice (NotifyRejected): sending it again would fail the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automations.errors import ConfigError, NotifyRejected
from automations.notify.notice import Notice

if TYPE_CHECKING:
    from jinja2 import Template

PARTS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "txt", "html"),
    "apprise": ("title", "md"),
    "escalation": ("title", "md"),
}

# Markdown that could add a link, an image, emphasis, code or a backslash escape...
_MARKDOWN = re.compile(r"([\\`*\[\]])")
# ... or raw HTML (a tag, a comment, an autolink) and entities, which Markdown passes on.
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_ENTITY = re.compile(r"&(?=#?\w+;)")


def markdown_text(value: Any) -> str:
    """Text shown as itself in Markdown: ``[x](y)``, ``**``, ``<script>`` stay text."""
    text = _MARKDOWN.sub(r"\\\1", str(value))
    return _TAG_START.sub("&lt;", _ENTITY.sub("&amp;", text))


def markdown_url(value: Any) -> str:
    """A link target that cannot end the ``(...)`` early or break the line."""
    return re.sub(r"[\s()<>]", lambda m: f"%{ord(m.group()):02X}", str(value))


def utc_moment(moment: datetime) -> str:
    """'2026-11-23 09:12 UTC': a channel has no timezone of its own."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


class NoticeTemplates:
    """One channel's templates for its type (``kind``: email, apprise or escalation)."""

    def __init__(self, kind: str, channel: str, templates_dir: Path | None = None) -> None:
        from automations.template_files import template_environment

        self.kind = kind
        self.channel = channel
        self.env = template_environment(templates_dir, "notify")
        self.env.filters.update(when=utc_moment, md=markdown_text, md_url=markdown_url)

    def check(self, now: datetime) -> None:
        """Load and render every part for every event type; ConfigError naming the file."""
        from automations.notify.sample import sample_notices

        for notice in sample_notices(self.channel, now):
            for part in PARTS[self.kind]:
                self._render(part, notice, _config_error)

    def render(self, part: str, notice: Notice) -> str:
        """The part for this notice; NotifyRejected if its template fails."""
        return self._render(part, notice, _rejected)

    def _render(self, part: str, notice: Notice, error: Callable[[str], Exception]) -> str:
        from jinja2 import TemplateError, TemplateNotFound, TemplatesNotFound, TemplateSyntaxError
        from jinja2.exceptions import SecurityError

        names = [f"{self.kind}.{notice.type}.{part}.j2", f"{self.kind}.{part}.j2"]
        template: Template | None = None
        try:
            template = self.env.select_template(names)
            return template.render(
                notice=notice,
                incident=notice.incident,
                details=notice.details,
                channel=self.channel,
            )
        except (TemplateNotFound, TemplatesNotFound) as exc:
            raise error(f"template {exc.name or names[-1]!r} not found") from None
        except TemplateSyntaxError as exc:
            raise error(f"template {exc.name!r}, line {exc.lineno}: {exc.message}") from None
        except SecurityError as exc:
            raise error(
                f"template {_name(template, names)!r}: {exc} (templates run in Jinja's sandbox: "
                "no attribute that starts with '_', no changing values)"
            ) from None
        except TemplateError as exc:
            raise error(f"template {_name(template, names)!r}: {exc}") from None


def _name(template: Template | None, names: list[str]) -> str:
    return template.name if template is not None and template.name else names[-1]


def _config_error(message: str) -> Exception:
    return ConfigError(message)


def _rejected(message: str) -> Exception:
    return NotifyRejected(message)
