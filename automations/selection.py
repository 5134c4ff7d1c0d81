"""Which of a rule's candidate actions go ahead this cycle: pure, no ledger, no API.

The engine hands in what the ledger says (the keys done before, the edits of the last
24 hours); these sort a rule's candidates into fresh, refused and done-before, hold back
what the rule's brake (``max_actions_per_cycle``, ``max_actions_per_day``) does not allow,
and say whom an action tells. The same for ``plan`` and a real cycle.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from datetime import timedelta

from automations.notify.spec import NotifySpec
from automations.rules.base import PlannedAction

DAY = timedelta(days=1)  # the window max_actions_per_day counts over


def sort_candidates(
    candidates: Sequence[PlannedAction], done: Set[str]
) -> tuple[list[PlannedAction], list[tuple[PlannedAction, str]], int]:
    """A rule's candidates as (fresh, refused with the reason, how many were done before).

    Done once means done: a key in ``done`` (the ledger's) is counted, not planned, even if
    the rule refuses it now. A refused candidate is never claimed, so it comes back next
    cycle. Order is kept: the brake holds back the last ones.
    """
    fresh: list[PlannedAction] = []
    refused: list[tuple[PlannedAction, str]] = []
    already_done = 0
    for action in candidates:
        if action.event_key in done:
            already_done += 1
        elif action.refused is not None:
            refused.append((action, action.refused))
        else:
            fresh.append(action)
    return fresh, refused, already_done


def brake(
    fresh: Sequence[PlannedAction], *, per_cycle: int, per_day: int, applied_today: int
) -> tuple[list[PlannedAction], int, str]:
    """The first actions the rule's limits allow, how many are held back, and which limit.

    At most ``per_cycle`` now, and at most ``per_day`` over the last 24 hours counting the
    ``applied_today`` edits that already landed. The limit is named only when one held
    actions back, e.g. "max_actions_per_cycle=10".
    """
    room = max(per_day - applied_today, 0)
    planned = list(fresh[: min(per_cycle, room)])
    braked = len(fresh) - len(planned)
    if not braked:
        return planned, 0, ""
    limit = (
        f"max_actions_per_day={per_day} ({applied_today} edits in the last 24 hours)"
        if room < per_cycle
        else f"max_actions_per_cycle={per_cycle}"
    )
    return planned, braked, limit


def notify_spec(action: PlannedAction) -> NotifySpec:
    """Whom an action tells: kept on its claim, turned into outbox rows when it is recorded."""
    return NotifySpec(action.notify, action.announce)
