"""One error tree: every exception class the product defines lives in automations/errors.py.

The sandbox (automations/sandbox/) is a separate program, the simulated incident.io, and
keeps its own errors; everything else is read with ``ast`` (nothing is imported but the
modules the bases come from), so a class deriving from an exception anywhere else fails
here with its file and line.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
from pathlib import Path

import automations
from automations import errors

ROOT = Path(automations.__file__).parent


def _product_modules() -> list[Path]:
    return [
        path for path in sorted(ROOT.rglob("*.py")) if path.relative_to(ROOT).parts[0] != "sandbox"
    ]


def _package_of(path: Path) -> str:
    """``automations.ledger`` for automations/ledger/copy.py and automations/ledger/__init__.py."""
    return ".".join(path.parent.relative_to(ROOT.parent).parts)


def _imported_names(tree: ast.Module, package: str) -> dict[str, str]:
    """Each name a module binds by importing, and the dotted path it stands for."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    names[head] = head
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{source}" if source else base
            for alias in node.names:
                names[alias.asname or alias.name] = f"{source}.{alias.name}"
    return names


def _lookup(dotted: str) -> object:
    """The object ``dotted`` names: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            found = getattr(found, attr)
        return found
    raise LookupError(dotted)


class _Module:
    """One source file: its classes by name, and whether each derives from BaseException."""

    def __init__(self, path: Path, package: str) -> None:
        """``package``: the one its relative imports start from."""
        self.path = path
        self.tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        self.imports = _imported_names(self.tree, package)
        self.classes = {
            node.name: node for node in ast.walk(self.tree) if isinstance(node, ast.ClassDef)
        }
        self._known: dict[str, bool] = {}

    def is_exception(self, node: ast.ClassDef) -> bool:
        if node.name not in self._known:
            self._known[node.name] = False  # a cycle of names is not an exception
            self._known[node.name] = any(self._base_is_exception(b) for b in node.bases)
        return self._known[node.name]

    def _base_is_exception(self, base: ast.expr) -> bool:
        if isinstance(base, ast.Subscript):  # Generic[T], Protocol[T]
            base = base.value
        head, _, rest = ast.unparse(base).partition(".")
        if not rest and head in self.classes:
            return self.is_exception(self.classes[head])
        if head in self.imports:
            found = _lookup(".".join(filter(None, [self.imports[head], rest])))
        elif hasattr(builtins, head) and not rest:
            found = getattr(builtins, head)
        else:
            raise AssertionError(f"{self.path}: cannot tell what base {ast.unparse(base)} is")
        return isinstance(found, type) and issubclass(found, BaseException)


def _exception_classes_outside_errors() -> list[str]:
    found = []
    for path in _product_modules():
        if path == ROOT / "errors.py":
            continue
        module = _Module(path, _package_of(path))
        for node in module.classes.values():
            if module.is_exception(node):
                found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name}")
    return found


def _error_classes() -> list[type[BaseException]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if cls.__module__ == errors.__name__ and issubclass(cls, BaseException)
    ]


def test_no_exception_class_is_defined_outside_errors_py() -> None:
    """Every class deriving from BaseException in automations/ (not the sandbox) is in errors.py."""
    assert _exception_classes_outside_errors() == []


def test_the_walk_finds_an_exception_class_wherever_it_is(tmp_path: Path) -> None:
    """The checker sees through local, imported and builtin bases, so the test above can fail."""
    source = tmp_path / "stray.py"
    source.write_text(
        "import smtplib\n"
        "from automations.errors import LedgerError\n"
        "class Local(ValueError): ...\n"
        "class Child(Local): ...\n"
        "class Imported(LedgerError): ...\n"
        "class Dotted(smtplib.SMTPException): ...\n"
        "def f():\n"
        "    class Nested(Exception): ...\n"
        "class Plain: ...\n"
        "class Model(dict[str, int]): ...\n",
        encoding="utf-8",
    )
    module = _Module(source, "automations")
    found = sorted(name for name, node in module.classes.items() if module.is_exception(node))
    assert found == ["Child", "Dotted", "Imported", "Local", "Nested"]


def test_every_error_derives_from_automations_error() -> None:
    """``except AutomationsError`` catches everything the product raises on purpose.

    SimulatedCrash is the one exception, on purpose: a test's crash point must get past
    every ``except Exception`` (and ``except AutomationsError``), as nothing catches a
    real crash.
    """
    outside = [
        cls.__name__ for cls in _error_classes() if not issubclass(cls, errors.AutomationsError)
    ]
    assert outside == ["SimulatedCrash"]
    assert not issubclass(errors.SimulatedCrash, Exception)


def test_the_tree_in_the_docstring_names_every_error() -> None:
    """errors.py's docstring draws the whole tree: a new class must be added to the drawing."""
    doc = errors.__doc__ or ""
    missing = [cls.__name__ for cls in _error_classes() if f" {cls.__name__} " not in doc]
    assert missing == []


def test_smtp_failures_split_like_notification_failures() -> None:
    """DeliveryRetryable and DeliveryRejected mirror NotifyRetryable and NotifyRejected."""
    assert issubclass(errors.DeliveryRetryable, errors.DeliveryError)
    assert issubclass(errors.DeliveryRejected, errors.DeliveryError)
    assert not issubclass(errors.DeliveryRejected, errors.DeliveryRetryable)
    assert not issubclass(errors.DeliveryRetryable, errors.DeliveryRejected)
