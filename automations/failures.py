"""Failures as values: what the engine passes around instead of their text.

An exception that is caught and carried on (a rule that raised while the others go on)
travels as a typed result holding the exception itself, so code that decides on it looks
at its type, never at a string. The text is made only where it is shown or stored (a log
line, the ledger's ``error`` column, ``--json``), by ``describe``: always the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from automations.errors import AutomationsError

# The step of the cycle (poll -> evaluate -> claim -> apply -> record) in which a rule's
# own code raised. Only evaluation is caught and carried today: one rule skips its cycle,
# the others go on.
Stage = Literal["evaluate"]


def described(exc: BaseException) -> str:
    """An exception in one line of text, e.g. "RuntimeError: a bug in a plugin"."""
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class RuleFailure:
    """A rule that raised: which rule, in which step, and the exception itself."""

    rule: str
    stage: Stage
    error: Exception

    def describe(self) -> str:
        """The text logged and stored for it: the exception's type and message."""
        return described(self.error)

    def __str__(self) -> str:
        return self.describe()


# Where a cycle ended early: a page or a read failed ("read"), an edit found the API
# unreachable and the rest waits for the next cycle ("apply"), or the finished run could
# not be recorded ("record").
CycleStage = Literal["read", "apply", "record"]


@dataclass(frozen=True)
class CycleFailure:
    """What ended a cycle early, and the exception itself (/healthz names it in its own
    words: the text of an API error is the API's, or a proxy's, and may echo anything)."""

    stage: CycleStage
    error: AutomationsError

    def describe(self) -> str:
        """The text of the ledger's run row, the cycle line and ``--json``."""
        if self.stage == "apply":
            return f"gave up the cycle, the API is unreachable: {self.error}"
        if self.stage == "record":
            return f"LedgerError: {self.error}"  # its own name, whatever the subclass
        return described(self.error)

    def __str__(self) -> str:
        return self.describe()
