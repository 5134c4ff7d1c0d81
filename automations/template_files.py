"""Where the shipped templates are, and the sandboxed Jinja environment every renderer uses.

The templates live in the repository's top-level ``templates/`` folder (digests at its
root, notifications in ``templates/notify/``). The wheel carries that folder as
``automations/templates/`` (hatch ``force-include``), so an installed package finds it
beside its modules, and an editable install (a checkout) finds it one folder up.

Templates and ``templates_dir`` come from the configuration, so they render in Jinja's
immutable sandbox with ``StrictUndefined`` (a typo is an error, not a blank); HTML
templates (``*.html.j2``) autoescape, since incident names are untrusted text.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from automations.errors import ConfigError

if TYPE_CHECKING:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

# A file every install has: it tells our folder from another package's "templates".
_MARKER = "digest.html.j2"


def shipped_templates() -> Path:
    """The folder of the built-in templates: inside the package, else the checkout's."""
    package = Path(__file__).resolve().parent
    for folder in (package / "templates", package.parent / "templates"):
        if (folder / _MARKER).is_file():
            return folder
    raise ConfigError(
        f"the built-in templates are missing (looked in {package / 'templates'} and "
        f"{package.parent / 'templates'}): reinstall automations"
    )


def template_environment(
    templates_dir: Path | None, subfolder: str = ""
) -> ImmutableSandboxedEnvironment:
    """Templates from ``templates_dir`` first (a file of the same name wins), then the
    shipped ones in ``subfolder``; sandboxed, strict, HTML autoescaped."""
    from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, select_autoescape
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    loaders: list[Any] = []
    if templates_dir is not None:
        loaders.append(FileSystemLoader(templates_dir))
    loaders.append(FileSystemLoader(shipped_templates() / subfolder))
    return ImmutableSandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm", "html.j2"), default_for_string=False
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
