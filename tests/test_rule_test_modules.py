"""Every built-in rule type has its own test module: tests/test_rule_<type>.py.

Like datasette's ``test_plugin_hooks_have_tests``. The convention: one module per
entry-point name in the ``automations.rules`` group (pyproject.toml), holding the
rule's pure tests. Other tests of the same rule may live elsewhere too (end to end,
config), but this module is where a newcomer looks first.
"""

from __future__ import annotations

import ast
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from automations.rules.registry import GROUP, RuleRegistry

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
THIS = Path(__file__).resolve()


def declared_types() -> set[str]:
    """The built-ins pyproject.toml registers in the rules entry-point group."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["entry-points"][GROUP])


def builtin_types() -> set[str]:
    """Declared ones, and any installed entry point that points into this package."""
    installed = {
        ep.name for ep in entry_points(group=GROUP) if ep.module.startswith("automations.")
    }
    return declared_types() | installed


def module_for(rule_type: str) -> Path:
    return TESTS / f"test_rule_{rule_type}.py"


def test_there_are_rule_types_to_check() -> None:
    """The check is not vacuous: the built-ins are found and the registry knows each."""
    found = builtin_types()
    assert {"escalate_severity", "sync_status"} <= found
    assert found <= set(RuleRegistry().names())


@pytest.mark.parametrize("rule_type", sorted(builtin_types()))
def test_each_rule_type_has_its_own_test_module(rule_type: str) -> None:
    """tests/test_rule_<type>.py exists and holds at least one test function."""
    path = module_for(rule_type)
    assert path.is_file(), (
        f"rule type {rule_type!r} has no test module: create {path.relative_to(ROOT)} "
        f"(one module per entry point name in the {GROUP!r} group)"
    )
    tree = ast.parse(path.read_text(), filename=str(path))
    tests = [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    ]
    assert tests, f"{path.relative_to(ROOT)} holds no test function for rule type {rule_type!r}"


def test_every_rule_test_module_names_a_rule_type() -> None:
    """No tests/test_rule_<name>.py outlives its rule type (a rename left behind)."""
    known = builtin_types()
    strays = [
        path.relative_to(ROOT).as_posix()
        for path in sorted(TESTS.glob("test_rule_*.py"))
        if path.resolve() != THIS and path.stem.removeprefix("test_rule_") not in known
    ]
    assert not strays, f"test modules for no known rule type: {strays}; known: {sorted(known)}"
