"""Which planned actions a cycle claims: not done before, not refused, within the brakes.

Pure: ``sort_candidates`` and ``brake`` from automations/selection.py, with no ledger and
no HTTP (the engine feeds them the ledger's done keys and the day's applied count).
"""

from __future__ import annotations

from datetime import timedelta

from automations.incidentio import IncidentEdit
from automations.rules.base import PlannedAction
from automations.rules.escalate import EscalateSeverity, EscalateSeverityOptions
from automations.selection import brake, sort_candidates
from tests.factories import CATALOG, incident


def rule(name: str = "esc") -> EscalateSeverity:
    options = EscalateSeverityOptions.model_validate(
        {
            "type": "escalate_severity",
            "name": name,
            "every": "1m",
            "steps": [{"after": "2h", "to": "Major"}],
        }
    )
    return EscalateSeverity(options, CATALOG)


def action(reason: str, *, name: str = "esc", refused: str | None = None) -> PlannedAction:
    """One edit by rule ``name`` on an incident of its own."""
    item = incident(age=timedelta(hours=3))
    edit = IncidentEdit(severity_id="SEV2")
    return rule(name).action(item, "severity-SEV2", reason, edit=edit, refused=refused)


def actions(count: int) -> list[PlannedAction]:
    """``count`` edits, each on its own incident, in planning order."""
    return [action(f"action {n}") for n in range(count)]


def reasons(planned: list[PlannedAction]) -> list[str]:
    return [a.reason for a in planned]


# -- sort_candidates: done keys and refusals ------------------------------------------------


def test_nothing_done_nothing_refused_keeps_every_candidate_in_order() -> None:
    """With an empty ledger every candidate is fresh, in the rule's order."""
    candidates = actions(3)
    fresh, refusals, already_done = sort_candidates(candidates, set())
    assert fresh == candidates
    assert refusals == []
    assert already_done == 0


def test_a_done_key_is_counted_not_planned() -> None:
    """Done once means done: a key the ledger holds is dropped and counted."""
    candidates = actions(3)
    fresh, refusals, already_done = sort_candidates(candidates, {candidates[1].event_key})
    assert fresh == [candidates[0], candidates[2]]
    assert refusals == []
    assert already_done == 1


def test_a_refused_candidate_is_skipped_with_its_reason() -> None:
    """A refused action is returned apart with the rule's reason, never among the fresh."""
    first = action("fine")
    why = "the severity ranks are unknown"
    bad = action("not fine", refused=why)
    fresh, refusals, already_done = sort_candidates([first, bad], set())
    assert fresh == [first]
    assert refusals == [(bad, why)]
    assert already_done == 0


def test_a_refused_candidate_already_done_is_counted_done_not_skipped() -> None:
    """The ledger wins over a refusal: an action done before is not reported as refused."""
    bad = action("done, then refused", refused="no longer allowed")
    fresh, refusals, already_done = sort_candidates([bad], {bad.event_key})
    assert (fresh, refusals, already_done) == ([], [], 1)


def test_unrelated_done_keys_do_not_matter() -> None:
    """Done keys of other rules or incidents leave these candidates alone."""
    candidates = actions(2)
    fresh, _, already_done = sort_candidates(candidates, {"other/01INC/severity-SEV2"})
    assert fresh == candidates
    assert already_done == 0


def test_two_rules_on_one_incident_are_sorted_apart() -> None:
    """Keys start with the rule's name: one rule's done key does not hide another's action."""
    item = incident(age=timedelta(hours=3))
    edit = IncidentEdit(severity_id="SEV2")
    first = rule("esc-a").action(item, "severity-SEV2", "a", edit=edit)
    second = rule("esc-b").action(item, "severity-SEV2", "b", edit=edit)
    assert first.event_key != second.event_key
    done = {first.event_key}
    assert sort_candidates([first], done) == ([], [], 1)
    assert sort_candidates([second], done) == ([second], [], 0)


def test_a_key_planned_twice_is_kept_twice_for_the_claim_to_settle() -> None:
    """Selection does not dedupe within a cycle: the ledger's unique claim does (one wins)."""
    (one,) = actions(1)
    fresh, _, _ = sort_candidates([one, one], set())
    assert fresh == [one, one]


# -- brake: max_actions_per_cycle and max_actions_per_day -----------------------------------


def test_under_both_limits_everything_goes_and_no_limit_is_named() -> None:
    """Fewer actions than either limit: all planned, nothing held back, no brake text."""
    fresh = actions(3)
    assert brake(fresh, per_cycle=10, per_day=100, applied_today=0) == (fresh, 0, "")


def test_exactly_at_the_cycle_limit_nothing_is_held() -> None:
    """The limit is inclusive: ten actions under max_actions_per_cycle=10 all go."""
    fresh = actions(10)
    planned, braked, limit = brake(fresh, per_cycle=10, per_day=100, applied_today=0)
    assert planned == fresh
    assert (braked, limit) == (0, "")


def test_the_cycle_limit_keeps_the_first_and_holds_the_rest() -> None:
    """Past max_actions_per_cycle the first ones in planning order go; the limit is named."""
    fresh = actions(5)
    planned, braked, limit = brake(fresh, per_cycle=2, per_day=100, applied_today=0)
    assert reasons(planned) == ["action 0", "action 1"]
    assert braked == 3
    assert limit == "max_actions_per_cycle=2"


def test_the_day_limit_counts_what_already_landed() -> None:
    """max_actions_per_day leaves room for per_day minus the edits of the last 24 hours."""
    fresh = actions(5)
    planned, braked, limit = brake(fresh, per_cycle=10, per_day=4, applied_today=2)
    assert reasons(planned) == ["action 0", "action 1"]
    assert braked == 3
    assert limit == "max_actions_per_day=4 (2 edits in the last 24 hours)"


def test_the_day_limit_spent_holds_everything() -> None:
    """A day's budget used up (or overrun by a lowered limit) plans nothing at all."""
    fresh = actions(2)
    for applied_today in (4, 9):
        planned, braked, limit = brake(fresh, per_cycle=10, per_day=4, applied_today=applied_today)
        assert planned == []
        assert braked == 2
        assert limit == f"max_actions_per_day=4 ({applied_today} edits in the last 24 hours)"


def test_the_tighter_limit_is_the_one_named() -> None:
    """Both limits bite: the one leaving less room holds the actions back and is named."""
    fresh = actions(6)
    by_cycle = brake(fresh, per_cycle=2, per_day=100, applied_today=97)
    assert (len(by_cycle[0]), by_cycle[2]) == (2, "max_actions_per_cycle=2")
    by_day = brake(fresh, per_cycle=3, per_day=100, applied_today=98)
    assert (len(by_day[0]), by_day[2]) == (
        2,
        "max_actions_per_day=100 (98 edits in the last 24 hours)",
    )


def test_equal_room_names_the_cycle_limit() -> None:
    """When both limits leave the same room, the per-cycle one is reported."""
    fresh = actions(5)
    _, braked, limit = brake(fresh, per_cycle=2, per_day=10, applied_today=8)
    assert braked == 3
    assert limit == "max_actions_per_cycle=2"


def test_no_fresh_actions_means_no_brake() -> None:
    """Nothing to do is not braked, even with the day's budget spent."""
    assert brake([], per_cycle=1, per_day=1, applied_today=5) == ([], 0, "")
