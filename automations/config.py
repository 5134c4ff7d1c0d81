"""The TOML file: parsed into pydantic models, every error naming file, key and what is allowed.

Rule types are looked up in the registry first (so an unknown ``type`` lists
the known ones), then the whole file is validated in one pass so a user sees
every problem at once, in words a person would use rather than pydantic's::

    config/automations.toml: 2 problems:
      rules[1].steps[0].after: '2 hours' is not a duration like 90s, ...
      rules[1].where.severity: expected a list, e.g. ["Minor"]; got 'Minor'
"""

from __future__ import annotations

import json
import re
import tomllib
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    create_model,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from automations.digest.config import DigestOptions, SMTPSettings
from automations.durations import Duration
from automations.errors import ConfigError, Problems
from automations.rules.base import AnyRule, RuleOptions
from automations.rules.registry import RuleRegistry


class IncidentIOSettings(BaseModel):
    """How to reach the API. The key is not here: it comes from the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(
        "https://api.incident.io",
        pattern=r"^https?://",
        description="API base URL; the sandbox is http://127.0.0.1:8765.",
    )
    requests_per_minute: StrictInt = Field(
        1000, ge=1, le=1200, description="Client-side limit; the API allows 1200/min per key."
    )
    timeout_seconds: float = Field(30.0, gt=0, le=300, description="Per-request timeout.")
    retry_attempts: StrictInt = Field(
        8, ge=1, le=30, description="Attempts per call on 429/5xx/timeouts."
    )


class StoreSettings(BaseModel):
    """Where the ledger lives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(Path("automations.db"), description="SQLite ledger file.")


class ServerSettings(BaseModel):
    """The optional health and metrics listener; off unless asked for, loopback unless told."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: StrictBool = Field(False, description="Serve /healthz and /metrics.")
    host: str = Field("127.0.0.1", min_length=1, description="Interface; 0.0.0.0 in Docker.")
    port: StrictInt = Field(9108, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    stale_after: Duration | None = Field(
        None,
        description="/healthz fails when no cycle succeeded for this long "
        "(default: 3x the longest rule interval, at least 5m; 2h when a rule uses cron).",
    )


class AppConfigBase(BaseModel):
    """Top-level keys; ``rules`` is added per registry (see _app_model)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident_io: IncidentIOSettings = Field(default_factory=IncidentIOSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    smtp: SMTPSettings | None = Field(None, description="Mail server for digests.")
    digests: list[DigestOptions] = Field(
        default_factory=list, description="Email digests (see README, Digests)."
    )


@dataclass(frozen=True)
class Config:
    """A validated file: settings plus each rule's options (names not yet resolved)."""

    path: Path
    incident_io: IncidentIOSettings
    store: StoreSettings
    rules: tuple[RuleOptions, ...]
    rule_types: dict[str, type[AnyRule]]
    server: ServerSettings = field(default_factory=ServerSettings)
    smtp: SMTPSettings | None = None
    digests: tuple[DigestOptions, ...] = ()

    def rule_class(self, options: RuleOptions) -> type[AnyRule]:
        return self.rule_types[options.type]


def _app_model(rule_types: dict[str, type[AnyRule]]) -> type[AppConfigBase]:
    models = [cls.options_model for cls in rule_types.values()]
    rule_annotation: Any
    if not models:
        rule_annotation = RuleOptions
    elif len(models) == 1:
        rule_annotation = models[0]
    else:
        rule_annotation = Annotated[Union[tuple(models)], Field(discriminator="type")]  # noqa: UP007
    model: type[AppConfigBase] = create_model(
        "AutomationsConfig",
        __base__=AppConfigBase,
        rules=(
            list[rule_annotation],
            Field(
                default_factory=list, description="Automations to run (see `automations rules`)."
            ),
        ),
    )
    return model


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file (pass --config or set AUTOMATIONS_CONFIG)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_config(path: Path, registry: RuleRegistry | None = None) -> Config:
    """Parse and validate a file; ConfigError lists every problem found.

    Relative paths in the file (``[store] path``, ``templates_dir``) are taken from
    the file's folder, so cron, systemd and a shell in another directory share one
    ledger.
    """
    registry = registry or RuleRegistry()
    data = read_toml(path)
    rules_raw = data.get("rules", [])
    problems = Problems()
    rule_types: dict[str, type[AnyRule]] = {}
    if isinstance(rules_raw, list):
        for index, rule in enumerate(rules_raw):
            if not isinstance(rule, dict):
                continue  # pydantic reports the wrong type below
            kind = rule.get("type")
            if not isinstance(kind, str):
                problems.add(
                    f"rules[{index}].type: is required; known: {', '.join(registry.names())}"
                )
                continue
            with problems.collect(f"rules[{index}].type"):
                rule_types[kind] = registry.load(kind)
    problems.raise_if_any(path)
    model = _app_model(rule_types)
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        rule_models = {name: cls.options_model for name, cls in rule_types.items()}
        for err in _first_causes(exc.errors()):
            problems.add(format_error(err, model, rule_models))
        problems.raise_if_any(path)
        raise  # unreachable: a ValidationError has at least one error
    parsed = anchor_paths(parsed, path.absolute().parent)
    rules: list[RuleOptions] = list(parsed.rules)  # type: ignore[attr-defined]
    seen: dict[str, int] = {}
    for index, rule in enumerate(rules):
        if rule.name in seen:
            problems.add(
                f"rules[{index}].name: {rule.name!r} is already used by rules[{seen[rule.name]}]; "
                "names must be unique (they are part of every event key)"
            )
        seen.setdefault(rule.name, index)
    for problem in _digest_problems(parsed.smtp, parsed.digests):
        problems.add(problem)
    problems.raise_if_any(path)
    return Config(
        path=path,
        incident_io=parsed.incident_io,
        store=parsed.store,
        rules=tuple(rules),
        rule_types=rule_types,
        server=parsed.server,
        smtp=parsed.smtp,
        digests=tuple(parsed.digests),
    )


def _first_causes(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Without the "too short" that only follows from a bad item (``to = ["oncall"]`` is one
    problem, the address, not two)."""
    bad_items = {tuple(err["loc"][:i]) for err in errors for i in range(1, len(err["loc"]))}
    return [
        err for err in errors if not (err["type"] == "too_short" and tuple(err["loc"]) in bad_items)
    ]


M = TypeVar("M", bound=BaseModel)


def anchor_paths(model: M, base: Path) -> M:
    """Every relative ``Path`` in ``model`` (and the models inside it) made relative to ``base``."""
    updates: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        anchored = _anchor(value, base)
        if anchored is not value:
            updates[name] = anchored
    return model.model_copy(update=updates) if updates else model


def _anchor(value: Any, base: Path) -> Any:
    if isinstance(value, Path):
        return value if value.is_absolute() or str(value) == ":memory:" else base / value
    if isinstance(value, BaseModel):
        return anchor_paths(value, base)
    if isinstance(value, list | tuple):
        items = [_anchor(item, base) for item in value]
        if any(new is not old for new, old in zip(items, value, strict=True)):
            return type(value)(items)
    return value


def _digest_problems(smtp: SMTPSettings | None, digests: Sequence[DigestOptions]) -> list[str]:
    """Checks across tables: unique digest names, and somewhere to send them."""
    problems = []
    seen: dict[str, int] = {}
    for index, digest in enumerate(digests):
        if digest.name in seen:
            problems.append(
                f"digests[{index}].name: {digest.name!r} is already used by "
                f"digests[{seen[digest.name]}]; names must be unique (they key the outbox)"
            )
        seen.setdefault(digest.name, index)
    if smtp is None and any(d.enabled for d in digests):
        problems.append(
            "smtp: is required when a digest is enabled; "
            'add [smtp] with host and sender, e.g. sender = "Incident Bot <incidents@example.com>"'
        )
    return problems


def config_json_schema(registry: RuleRegistry | None = None) -> dict[str, Any]:
    """JSON Schema of the file, with every installed rule type, for editors."""
    registry = registry or RuleRegistry()
    schema = _app_model(registry.load_all()).model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "automations configuration"
    return schema


# pydantic's patterns, in words (a regex is not an answer for a person editing TOML).
PATTERN_WORDS = {
    r"^[a-z0-9][a-z0-9_-]*$": "must be lowercase letters, digits, - and _ "
    "(starting with a letter or digit)",
    r"^https?://": "must start with http:// or https://",
    r"^[A-Za-z0-9][A-Za-z0-9_.-]*$": "must be a name of letters, digits, ., - and _ (no folders)",
}
LIST_TYPES = ("list_type", "tuple_type", "set_type", "frozen_set_type", "iterable_type")
TABLE_TYPES = ("dict_type", "model_type", "model_attributes_type", "dataclass_type")


def format_error(
    err: ErrorDetails, model: type[BaseModel], rule_models: dict[str, type[RuleOptions]]
) -> str:
    """One pydantic error as ``key.path: message`` in words a person would use."""
    tags = set(rule_models)
    loc = [part for i, part in enumerate(err["loc"]) if not _is_tag(err["loc"], i, tags)]
    path = _format_loc(loc)
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, err["loc"][:-1], rule_models)
        message = "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    else:
        info, inside = _field_at(model, err["loc"], rule_models)
        message = humane_message(err, info, inside)
    return f"{path}: {message}" if path else message


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


def show_value(value: Any) -> str:
    """A value as it looks in TOML: true, 5, 'text', [1, 2], { a = 1 }."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{k} = {show_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }" if pairs else "{}"
    if isinstance(value, str):
        return repr(value)
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


def _is_tag(loc: Sequence[int | str], index: int, tags: set[str]) -> bool:
    return (
        index >= 2 and loc[0] == "rules" and isinstance(loc[index - 1], int) and loc[index] in tags
    )


def _format_loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _allowed_keys(
    model: type[BaseModel], loc: Sequence[int | str], rule_models: dict[str, type[RuleOptions]]
) -> list[str]:
    """Walk the models along ``loc`` to list the keys allowed where an unknown one was."""
    current: Any = model
    for i, part in enumerate(loc):
        if isinstance(part, int):
            continue
        if _is_tag(loc, i, set(rule_models)):
            current = rule_models[part]
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
    model: type[BaseModel], loc: Sequence[int | str], rule_models: dict[str, type[RuleOptions]]
) -> tuple[FieldInfo | None, bool]:
    """The field an error is about, and whether it is about an item or a value inside it."""
    current: Any = model
    info: FieldInfo | None = None
    inside = False
    for i, part in enumerate(loc):
        if _is_tag(loc, i, set(rule_models)):
            current = rule_models[str(part)]
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
