"""docs/architecture.md names every module, so a newcomer finds any step of a cycle there."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "automations"
MAP = REPO / "docs" / "architecture.md"


def modules() -> list[str]:
    """Every module of the product, relative to automations/ (the sandbox is one entry)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if path.name in ("__init__.py", "__main__.py") or relative.startswith("sandbox/"):
            continue
        found.append(relative)
    return found


def test_every_module_is_on_the_map() -> None:
    """A module added without a line on the map fails here, naming it."""
    named = set(re.findall(r"`([a-z_/]+\.py)`", MAP.read_text(encoding="utf-8")))
    missing = [module for module in modules() if module not in named]
    assert not missing, f"add these to docs/architecture.md: {', '.join(missing)}"


def test_the_map_names_no_module_that_is_gone() -> None:
    """A module renamed or removed leaves no stale path on the map."""
    named = set(re.findall(r"`([a-z_/]+\.py)`", MAP.read_text(encoding="utf-8")))
    stale = sorted(
        name for name in named if not ((PACKAGE / name).is_file() or (REPO / name).is_file())
    )
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"
