"""pydantic's validation errors in a person's words: the key path, what was expected, an
example, and what was given, e.g.::

    rules[0].where.severity: expected a list, e.g. ["Minor"]; got 'Minor'
    rules[0].name: 'Bad Name' must be lowercase letters, digits, - and _ (...)
    rules[0].colour: unknown key; allowed: cron, enabled, every, ...

Never pydantic's own wording ("Input should be ..."): the reader edits TOML, not Python.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

# The models of each list of tables told apart by ``type`` (``rules``, ``channels``):
# {key: {type: model}}, so a path names the table, not pydantic's tag.
Tagged = Mapping[str, Mapping[str, type[BaseModel]]]


def validation_problems(exc: ValidationError, model: type[BaseModel], tagged: Tagged) -> list[str]:
    """One line per problem, ``key.path: message``."""
    return [format_error(err, model, tagged) for err in _first_causes(exc.errors())]


def repeated_names(table: str, names: Sequence[str], why: str) -> dict[int, str]:
    """Checks across a list of tables: each index whose name an earlier item already has,
    with the problem naming both, e.g. ``rules[2].name: 'x' is already used by rules[0]``."""
    first: dict[str, int] = {}
    problems: dict[int, str] = {}
    for index, name in enumerate(names):
        if name in first:
            problems[index] = (
                f"{table}[{index}].name: {name!r} is already used by {table}[{first[name]}]; "
                f"names must be unique ({why})"
            )
        first.setdefault(name, index)
    return problems


def _first_causes(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Without the "too short" that only follows from a bad item (``to = ["oncall"]`` is one
    problem, the address, not two)."""
    bad_items = {tuple(err["loc"][:i]) for err in errors for i in range(1, len(err["loc"]))}
    return [
        err for err in errors if not (err["type"] == "too_short" and tuple(err["loc"]) in bad_items)
    ]


# pydantic's patterns, in words (a regex is not an answer for a person editing TOML).
PATTERN_WORDS = {
    r"^[a-z0-9][a-z0-9_-]*$": "must be lowercase letters, digits, - and _ "
    "(starting with a letter or digit)",
    r"^https?://": "must start with http:// or https://",
    r"^[A-Za-z0-9][A-Za-z0-9_.-]*$": "must be a name of letters, digits, ., - and _ (no folders)",
}
LIST_TYPES = ("list_type", "tuple_type", "set_type", "frozen_set_type", "iterable_type")
TABLE_TYPES = ("dict_type", "model_type", "model_attributes_type", "dataclass_type")


def format_error(err: ErrorDetails, model: type[BaseModel], tagged: Tagged) -> str:
    """One pydantic error as ``key.path: message`` in words a person would use."""
    loc = [part for i, part in enumerate(err["loc"]) if not _is_tag(err["loc"], i, tagged)]
    path = _format_loc(loc)
    if err["type"] in ("union_tag_invalid", "union_tag_not_found") and loc and loc[0] in tagged:
        return f"{path}.type: {_tag_message(err, loc[0], tagged[str(loc[0])])}"
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, err["loc"][:-1], tagged)
        message = "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    else:
        info, inside = _field_at(model, err["loc"], tagged)
        message = humane_message(err, info, inside)
    return f"{path}: {message}" if path else message


def _tag_message(err: ErrorDetails, key: int | str, models: Mapping[str, Any]) -> str:
    """A table of ``channels`` without a ``type``, or with one that does not exist."""
    known = ", ".join(models)
    if err["type"] == "union_tag_not_found":
        return f"is required; known: {known}"
    tag = (err.get("ctx") or {}).get("tag", err.get("input"))
    return f"{show_value(tag)} is not a {str(key).removesuffix('s')} type; known: {known}"


def humane_message(err: ErrorDetails, info: FieldInfo | None, inside: bool = False) -> str:
    """What is wrong with the value, and what would be right; never pydantic's own words."""
    kind, given, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    shown = show_value(given)
    if kind == "missing":
        return "is required"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", "is not valid"))
    if kind in ("literal_error", "enum"):
        return f"{shown} is not allowed; choose {ctx.get('expected', 'another value')}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false (without quotes); got {shown}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, e.g. {_number_example(given, info)}; got {shown}"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"expected a number, e.g. {_number_example(given, info)}; got {shown}"
    if kind == "string_type":
        return f"expected text in quotes, e.g. {_text_example(given, info, inside)}; got {shown}"
    if kind == "path_type":
        return f"expected a file path in quotes, e.g. {_text_example(given, info)}; got {shown}"
    table = _inner_model(info.annotation) if info is not None else None
    if kind in LIST_TYPES and table is not None:
        if len(err["loc"]) == 1:  # [[rules]], [[digests]]
            return f"expected tables, each one written as [[{err['loc'][0]}]]; got {shown}"
        keys = ", ".join(f"{k} = ..." for k, f in table.model_fields.items() if f.is_required())
        return f"expected a list of tables, e.g. [ {{ {keys or 'key = value'} }} ]; got {shown}"
    if kind in LIST_TYPES:
        return f"expected a list, e.g. {_list_example(given, info)}; got {shown}"
    if kind in TABLE_TYPES:
        example = _described_example(info) or "{ key = value }"
        return f"expected a table, e.g. {example}; got {shown}"
    if kind == "string_pattern_mismatch":
        words = PATTERN_WORDS.get(str(ctx.get("pattern")))
        return f"{shown} {words}" if words else f"{shown} is not allowed{_described(info)}"
    if kind == "string_too_short":
        least = ctx.get("min_length", 1)
        return "must not be empty" if least == 1 else f"needs at least {least} characters"
    if kind == "string_too_long":
        return f"is longer than the {ctx.get('max_length')} characters allowed"
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return f"needs at least {least} {'entry' if least == 1 else 'entries'}; got {shown}"
    if kind == "too_long":
        return f"allows at most {ctx.get('max_length')} entries; got {ctx.get('actual_length')}"
    if kind == "greater_than_equal":
        return f"{shown} is too small; the smallest allowed is {ctx.get('ge')}"
    if kind == "greater_than":
        return f"{shown} is too small; it must be more than {ctx.get('gt')}"
    if kind == "less_than_equal":
        return f"{shown} is too large; the largest allowed is {ctx.get('le')}"
    if kind == "less_than":
        return f"{shown} is too large; it must be less than {ctx.get('lt')}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return f"{shown} is not allowed; choose {ctx.get('expected_tags', 'another value')}"
    return f"{shown} is not allowed here{_described(info)}"


SHOWN_LENGTH = 80  # characters of a value echoed in a message: it stays one readable line
_SHOWN_DEPTH = 4  # lists and tables inside each other shown; deeper ones are "..."


def show_value(value: Any) -> str:
    """A value as it looks in TOML: true, 5, 'text', [1, 2], { a = 1 }; cut short when long
    or deeply nested (hundreds of levels would exhaust the stack)."""
    text = _show(value, 0)
    return text if len(text) <= SHOWN_LENGTH else f"{text[: SHOWN_LENGTH - 3]}..."


def _show(value: Any, depth: int) -> str:
    if isinstance(value, list | tuple | dict) and depth >= _SHOWN_DEPTH:
        return "..."
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v, depth + 1) for v in value[:SHOWN_LENGTH]) + "]"
    if isinstance(value, dict):
        items = list(value.items())[:SHOWN_LENGTH]
        pairs = ", ".join(f"{k} = {_show(v, depth + 1)}" for k, v in items)
        return "{ " + pairs + " }" if pairs else "{}"
    if isinstance(value, str):
        return repr(value[: SHOWN_LENGTH + 1])
    return str(value)


_EXAMPLE = re.compile(r"e\.g\. (\[[^\]]*\]|\{.*\}|\"[^\"]*\"|'[^']*'|[^\s;,()]+)")


def _described_example(info: FieldInfo | None) -> str | None:
    """The example a field's description gives after "e.g.", as written there."""
    found = _EXAMPLE.search(info.description or "") if info is not None else None
    return found.group(1).rstrip(".") if found else None


def _described(info: FieldInfo | None) -> str:
    return f" ({info.description})" if info is not None and info.description else ""


def _list_example(given: Any, info: FieldInfo | None) -> str:
    if isinstance(given, str | int | float) and not isinstance(given, bool):
        return json.dumps([given])  # their own value, in brackets: ["Minor"]
    return _described_example(info) or '["..."]'


def _text_example(given: Any, info: FieldInfo | None, inside: bool = False) -> str:
    example = _described_example(info)
    if example is not None and example.startswith("["):
        if not inside:
            return example
        items = json.loads(example) if example.startswith('["') else []
        example = str(items[0]) if items else None
    if example is not None:
        return json.dumps(example.strip("\"'"))
    default = info.default if info is not None else None
    if isinstance(default, str | Path) and str(default):
        return json.dumps(str(default))
    return json.dumps(show_value(given).strip("'"))


def _number_example(given: Any, info: FieldInfo | None) -> str:
    if isinstance(given, str) and given.strip().lstrip("-").replace(".", "", 1).isdigit():
        return given.strip()  # "10" -> 10: the same number without quotes
    default = info.default if info is not None else None
    if isinstance(default, int | float) and not isinstance(default, bool):
        return str(default)
    return "10"


def _is_tag(loc: Sequence[int | str], index: int, tagged: Tagged) -> bool:
    """Whether ``loc[index]`` is pydantic's union tag (``rules[0].<escalate_severity>.steps``)."""
    return (
        index >= 2
        and isinstance(loc[0], str)
        and isinstance(loc[index - 1], int)
        and loc[index] in tagged.get(loc[0], {})
    )


def _format_loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _allowed_keys(model: type[BaseModel], loc: Sequence[int | str], tagged: Tagged) -> list[str]:
    """Walk the models along ``loc`` to list the keys allowed where an unknown one was."""
    current: Any = model
    for i, part in enumerate(loc):
        if isinstance(part, int):
            continue
        if _is_tag(loc, i, tagged):
            current = tagged[str(loc[0])][str(part)]
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(part)
        if info is None:
            return []
        current = _inner_model(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _field_at(
    model: type[BaseModel], loc: Sequence[int | str], tagged: Tagged
) -> tuple[FieldInfo | None, bool]:
    """The field an error is about, and whether it is about an item or a value inside it."""
    current: Any = model
    info: FieldInfo | None = None
    inside = False
    for i, part in enumerate(loc):
        if _is_tag(loc, i, tagged):
            current = tagged[str(loc[0])][str(part)]
            continue
        fields = (
            current.model_fields
            if isinstance(current, type) and issubclass(current, BaseModel)
            else {}
        )
        if isinstance(part, str) and part in fields:
            info, inside = fields[part], False
            current = _inner_model(info.annotation)
        else:
            inside = True  # an index or a table key inside ``info``
    return info, inside


def _inner_model(annotation: Any) -> Any:
    """The BaseModel inside list[...] / X | None / Annotated[...] (first one wins)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
