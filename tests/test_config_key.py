"""config_key: a ConfigError raised in a block comes out located at its key path (and file)."""

from __future__ import annotations

import pytest

from automations.errors import ConfigError, Problems, UnknownName, config_key


def test_a_key_path_problem_gets_the_prefix_joined_with_a_dot() -> None:
    """``steps[0].to: ...`` raised under ``rules[1]`` reads ``rules[1].steps[0].to: ...``."""
    with pytest.raises(ConfigError) as info, config_key("rules[1]"):
        raise ConfigError("steps[0].to: 'Sev 9' is not a known severity")
    assert str(info.value) == "rules[1].steps[0].to: 'Sev 9' is not a known severity"
    assert info.value.problems == ["rules[1].steps[0].to: 'Sev 9' is not a known severity"]


def test_prose_gets_the_key_and_a_colon() -> None:
    """A message that does not start with a key path is put after ``key: ``."""
    with pytest.raises(ConfigError) as info, config_key("templates"):
        raise ConfigError("template 'email.subject.j2' not found")
    assert str(info.value) == "templates: template 'email.subject.j2' not found"


def test_the_file_is_named_once_above_every_problem() -> None:
    """With a file, several problems read like the whole-file check's listing."""
    with pytest.raises(ConfigError) as info, config_key("digests[0]", "config.toml"):
        raise ConfigError.listing(["cron: is required", "to: is required"])
    assert str(info.value) == (
        "config.toml: 2 problems:\n  digests[0].cron: is required\n  digests[0].to: is required"
    )
    assert info.value.problems == ["digests[0].cron: is required", "digests[0].to: is required"]


def test_an_unknown_name_stays_an_unknown_name() -> None:
    """A plugin catching UnknownName (kind, value, valid names) still can, with its path set."""
    with pytest.raises(UnknownName) as info, config_key("rules[2]"), config_key("field"):
        raise UnknownName("custom field", "Teem", ["Team", "Service"])
    assert info.value.path == "rules[2].field"
    assert (info.value.kind, info.value.value) == ("custom field", "Teem")
    assert str(info.value) == (
        "rules[2].field: 'Teem' is not a known custom field; valid: Service, Team"
    )


def test_other_errors_pass_through_untouched() -> None:
    """Only configuration problems are located; a bug stays the bug it is."""
    with pytest.raises(KeyError), config_key("rules[0]"):
        raise KeyError("x")


def test_collected_problems_read_the_same_as_raised_ones() -> None:
    """Problems.collect(prefix) and config_key(prefix) give the same line for the same error."""
    problems = Problems()
    with problems.collect("rules[0]"):
        raise UnknownName("severity", "Tiny", ["Minor"], "steps[0].to")
    with pytest.raises(ConfigError) as info, config_key("rules[0]"):
        raise UnknownName("severity", "Tiny", ["Minor"], "steps[0].to")
    assert problems.lines == info.value.problems
