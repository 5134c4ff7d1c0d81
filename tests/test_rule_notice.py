"""notice evaluated purely: after `after`, once per stretch, reminders on their own keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from automations.errors import ConfigError
from automations.rules.base import EvaluationContext
from automations.rules.notice import NoticeOptions, NoticeRule
from tests.factories import CATALOG, NOW, incident
from tests.test_escalate_anchors import update

H = timedelta(hours=1)
M = timedelta(minutes=1)


def make(**overrides: Any) -> NoticeRule:
    options: dict[str, Any] = {
        "type": "notice",
        "name": "critical-1h",
        "every": "1m",
        "where": {"status_category": ["live"]},
        "after": "1h",
        "channels": ["leadership", "ops-hook"],
    }
    options.update(overrides)
    return NoticeRule(NoticeOptions.model_validate(options), CATALOG)


def at(now_offset: timedelta = timedelta(0)) -> EvaluationContext:
    return EvaluationContext(NOW + now_offset, CATALOG)


def test_announces_after_the_wait_and_only_then() -> None:
    """A 30m-old incident is not due; a 2h-old one is, as a notify-only action to both channels."""
    rule = make()
    young, old = incident(age=30 * M), incident(age=2 * H)
    (action,) = rule.evaluate([young, old], at())
    assert action.incident_id == old.id
    assert action.effect == "notify"
    assert action.edit is None
    assert action.request_body() == {}
    assert action.notify == ("leadership", "ops-hook")
    assert action.event_key.startswith(f"critical-1h/{old.id}/notice-")
    assert "open for 2h" in action.reason


def test_one_key_per_stretch_without_repeat() -> None:
    """Hours later the key is the same (so the ledger says done); no reminder without repeat."""
    rule, item = make(), incident(age=2 * H)
    first = rule.evaluate([item], at())[0].event_key
    later = rule.evaluate([item], at(5 * H))[0].event_key
    assert first == later


def test_repeat_every_gives_each_reminder_its_own_key() -> None:
    """With repeat_every = 2h: due at 1h (key 0), 3h (reminder 1), 5h (reminder 2)."""
    rule = make(repeat_every="2h")
    item = incident(age=timedelta(0) + M)
    keys = []
    for hours in (0.5, 1.5, 2.9, 3.1, 5.2):
        actions = rule.evaluate([item], at(timedelta(hours=hours)))
        keys.append(actions[0].event_key if actions else None)
    assert keys[0] is None
    assert keys[1] == keys[2]
    assert keys[1] is not None
    assert "-r" not in keys[1]
    assert keys[3] is not None
    assert keys[3].endswith("-r1")
    assert keys[4] is not None
    assert keys[4].endswith("-r2")
    assert "reminder 2" in rule.evaluate([item], at(timedelta(hours=5.2)))[0].reason


def test_since_live_restarts_with_a_new_stretch() -> None:
    """Back to live after a pause: a new anchor, so a new key and a new announcement."""
    rule = make(since="live")
    item = incident(age=10 * H, status="Investigating")
    first = [update(item, 9 * H, "Investigating")]
    again = [*first, update(item, 5 * H, "Documenting"), update(item, 3 * H, "Investigating")]
    (a,) = rule.evaluate([item], EvaluationContext(NOW, CATALOG, updates={item.id: first}))
    (b,) = rule.evaluate([item], EvaluationContext(NOW, CATALOG, updates={item.id: again}))
    assert a.event_key != b.event_key
    assert "live for 3h" in b.reason


def test_needs_updates_only_when_it_could_be_due() -> None:
    """since = live asks for updates only for incidents at least `after` old."""
    rule = make(since="live")
    assert not rule.needs_updates(incident(age=30 * M), NOW)
    assert rule.needs_updates(incident(age=2 * H), NOW)
    assert not make().needs_updates(incident(age=2 * H), NOW)


def test_message_and_announce_are_carried() -> None:
    """The message leads the reason; announce is rendered with the reason and incident."""
    rule = make(message="Live for too long", announce="Heads up {{ incident.reference }}")
    item = incident(age=2 * H)
    (action,) = rule.evaluate([item], at())
    assert action.reason.startswith("Live for too long: open for 2h")
    assert action.announce == f"Heads up {item.reference}"


@pytest.mark.parametrize(
    ("overrides", "wanted"),
    [
        ({"channels": []}, "at least 1"),
        ({"channels": ["Bad Name"]}, "not a channel name"),
        ({"channels": ["a", "a"]}, "listed twice"),
        ({"repeat_every": "0s"}, "repeat_every"),
        ({"announce": "{{ unclosed"}, "not a valid Jinja template"),
    ],
)
def test_bad_options_are_refused(overrides: dict[str, Any], wanted: str) -> None:
    """Bad channels, repeat and announce template are refused when the config loads."""
    with pytest.raises(ValidationError, match=wanted):
        make(**overrides)


def test_unknown_since_names_the_valid_ones() -> None:
    """since names an incident timestamp; an unknown one lists what is allowed."""
    with pytest.raises(ConfigError, match=r"since: 'Nope' is not a known incident timestamp"):
        make(since="Nope")
