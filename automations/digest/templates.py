"""A digest's templates, checked without the API or the ledger (``validate --offline``)."""

from __future__ import annotations

from automations.config import Config
from automations.digest.config import DigestOptions
from automations.digest.render import Renderer
from automations.errors import Problems


def template_renderer(index: int, options: DigestOptions, problems: Problems) -> Renderer | None:
    """The digest's renderer with its templates loaded; None (and a problem) if they fail."""
    path = f"digests[{index}]"
    templates_dir = options.templates_dir  # load_config made it absolute (config's folder)
    if templates_dir is not None and not templates_dir.is_dir():
        problems.add(f"{path}.templates_dir: {templates_dir}: no such directory")
        return None
    renderer = Renderer(options.template, options.zone, templates_dir)
    with problems.collect(f"{path}.template"):
        renderer.check()
        return renderer
    return None


def check_templates(config: Config, problems: Problems) -> None:
    """Each digest's templates_dir and templates, without the API (``validate --offline``)."""
    for index, options in enumerate(config.digests):
        template_renderer(index, options, problems)
