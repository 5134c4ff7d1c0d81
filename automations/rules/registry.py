"""Rule types from the ``automations.rules`` entry-point group, loaded only when named.

Like APScheduler's plugin loading: listing names reads package metadata only;
a type is imported when a config uses it, and checked against the Rule base.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from automations.errors import ConfigError
from automations.rules.base import AnyRule, Rule

GROUP = "automations.rules"


class RuleRegistry:
    """Known rule types by name; ``extra`` lets tests register a class directly."""

    def __init__(self, extra: dict[str, type[AnyRule]] | None = None) -> None:
        self._entry_points: dict[str, EntryPoint] = {
            ep.name: ep for ep in entry_points(group=GROUP)
        }
        self._loaded: dict[str, type[AnyRule]] = dict(extra or {})

    def names(self) -> list[str]:
        return sorted(set(self._entry_points) | set(self._loaded))

    def load(self, name: str) -> type[AnyRule]:
        """The rule class for a type name; ConfigError listing the known ones otherwise."""
        if name in self._loaded:
            return self._loaded[name]
        entry_point = self._entry_points.get(name)
        if entry_point is None:
            known = ", ".join(self.names()) or "(none installed)"
            raise ConfigError(f"{name!r} is not a rule type; known: {known}")
        try:
            cls = entry_point.load()
        except Exception as exc:  # a broken plugin must not take the daemon down with a traceback
            raise ConfigError(
                f"rule type {name!r} ({entry_point.value}) failed to import: {exc}"
            ) from exc
        if not (isinstance(cls, type) and issubclass(cls, Rule)):
            raise ConfigError(f"rule type {name!r} ({entry_point.value}) is not a Rule subclass")
        self._loaded[name] = cls
        return cls

    def load_all(self) -> dict[str, type[AnyRule]]:
        return {name: self.load(name) for name in self.names()}
