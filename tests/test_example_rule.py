"""The README's plugin example works: installed by pip, found by entry point, run by the engine."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from automations.daemon import run_once
from automations.errors import ConfigError, config_key
from automations.rules.registry import RuleRegistry
from tests.engine_harness import Harness
from tests.factories import CATALOG

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "default_team"
sys.path.insert(0, str(EXAMPLE))

from default_team import DefaultTeam, DefaultTeamOptions  # noqa: E402

RULE = """
[[rules]]
name = "unowned-to-platform"
type = "default_team"
every = "5m"
where = { status_category = ["triage", "live"] }
team = "Platform"
after = "30m"
"""


def test_pip_install_registers_the_rule_type(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         str(EXAMPLE)],
        check=True, capture_output=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), *sys.path])}
    listed = subprocess.run(
        [sys.executable, "-m", "automations", "rules"], env=env, capture_output=True, text=True
    )
    assert "default_team: Set a default team on incidents that have none" in listed.stdout
    assert "team (required)" in listed.stdout


def test_the_example_rule_sets_a_team_once(harness: Harness) -> None:
    harness.write(RULE)
    registry = RuleRegistry(extra={"default_team": DefaultTeam})
    old = harness.add("Old, no team", age=timedelta(hours=1), severity="Minor")
    young = harness.add("Young, no team", age=timedelta(minutes=5))
    owned = harness.add("Owned", age=timedelta(hours=2), custom_fields={"Team": "Payments"})
    runtime = harness.runtime(registry=registry)
    try:
        (first,) = run_once(runtime)
        (second,) = run_once(runtime)
    finally:
        runtime.close()

    assert first.applied == 1
    assert second.applied == 0
    (post,) = harness.posts()
    assert post["path"] == f"/v2/incidents/{old['id']}/actions/edit"
    teams = {
        i["id"]: [
            v["value_option"]["value"]
            for e in harness.sandbox.incident(i["id"])["custom_field_entries"]
            if e["custom_field"]["name"] == "Team"
            for v in e["values"]
        ]
        for i in (old, young, owned)
    }
    assert teams == {old["id"]: ["Platform"], young["id"]: [], owned["id"]: ["Payments"]}


def test_an_unknown_name_is_reported_at_its_key() -> None:
    """The example's config_key blocks name the key: rules[2].team, not just the bad value."""
    options = DefaultTeamOptions.model_validate(
        {"name": "unowned", "type": "default_team", "every": "5m", "team": "Teem", "after": "30m"}
    )
    with pytest.raises(ConfigError) as info, config_key("rules[2]"):
        DefaultTeam(options, CATALOG)
    assert str(info.value) == (
        "rules[2].team: 'Teem' is not a known option of 'Team'; valid: Payments, Platform"
    )
