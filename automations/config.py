"""The TOML file: parsed into pydantic models, every error naming file, key and what is allowed.

Rule types are looked up in the registry first (so an unknown ``type`` lists
the known ones), then the whole file is validated in one pass so a user sees
every problem at once, in words a person would use rather than pydantic's::

    config/automations.toml: 2 problems:
      rules[1].steps[0].after: '2 hours' is not a duration like 90s, ...
      rules[1].where.severity: expected a list, e.g. ["Minor"]; got 'Minor'
"""

from __future__ import annotations

import codecs
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    StrictBool,
    StrictInt,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from automations.clock import DEFAULT_MAX_SKEW
from automations.config_errors import Tagged, repeated_names, validation_problems
from automations.digest.config import DigestOptions, SMTPSettings
from automations.durations import HINT as DURATION_HINT
from automations.durations import Duration, format_duration, parse_duration
from automations.errors import ConfigError, Problems, RefusedFile
from automations.files import read_regular_file
from automations.notify.config import (
    CHANNEL_MODELS,
    AnyChannel,
    ChannelOptions,
    channel_problems,
    unknown_channel_problems,
)
from automations.rules.base import AnyRule, RuleOptions
from automations.rules.registry import RuleRegistry
from automations.store_url import has_password, is_postgres_url
from automations.webhooks.config import WebhookSettings, webhook_problems

# A password in the file would sit in a ConfigMap, a repository, a backup: refused.
PASSWORD_IN_FILE = (
    "has a password in it; the file never holds one: set AUTOMATIONS_STORE_URL (or "
    "AUTOMATIONS_STORE_URL_FILE, a file holding the URL) to the URL with its password, or keep "
    "the URL here without it and give the password in PGPASSWORD or a PGPASSFILE "
    "(libpq reads both)"
)


def _duration_or_off(value: Any) -> timedelta | None:
    if value == "off":
        return None
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f'{value!r} is not {DURATION_HINT} or "off" (write it as a string)')
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f'{exc} or "off"') from None


DurationOrOff = Annotated[
    timedelta | None,
    BeforeValidator(_duration_or_off),
    PlainSerializer(lambda v: "off" if v is None else format_duration(v), return_type=str),
]


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
    max_clock_skew: DurationOrOff = Field(
        DEFAULT_MAX_SKEW,
        description="How far the API's Date may be from the host's before nothing is done; \"off\" "
        "follows it however far (a sandbox whose clock is moved on purpose).",
    )


MIN_RETENTION = timedelta(days=30)


class StoreSettings(BaseModel):
    """Where the ledger lives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(
        Path("automations.db"), description="SQLite ledger file (the default store)."
    )
    url: str | None = Field(
        None,
        description="PostgreSQL ledger instead of a file, e.g. "
        "postgresql://automations@db.internal/automations (several replicas share it). No "
        "password here: AUTOMATIONS_STORE_URL(_FILE), PGPASSWORD or PGPASSFILE.",
    )
    retention: Duration = Field(
        timedelta(days=400),
        description="Forget ledger rows older than this (at least 30d) that guard nothing: "
        "runs, finished digests, and the events of incidents closed (or deleted) for that long "
        "that no rule's query returns.",
    )

    @field_validator("retention")
    @classmethod
    def _long_enough(cls, value: timedelta) -> timedelta:
        if value < MIN_RETENTION:
            raise ValueError(
                f"{format_duration(value)} is too short; keep at least "
                f"{format_duration(MIN_RETENTION)} (the default is 400d)"
            )
        return value

    @field_validator("path")
    @classmethod
    def _no_nul(cls, value: Path) -> Path:
        if "\0" in str(value):  # SQLite and the OS would raise ValueError deep in a command
            raise ValueError(f"{str(value)!r} contains a NUL character; a file path cannot")
        return value

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        # Never echo the value: it may hold a password.
        if value is None:
            return None
        if not is_postgres_url(value):
            raise ValueError(
                "must start with postgresql:// (e.g. postgresql://automations@db.internal/"
                "automations); a SQLite ledger is [store] path"
            )
        if has_password(value):
            raise ValueError(PASSWORD_IN_FILE)
        return value

    # Whether the file names a path (not the default): a URL from the environment then
    # conflicts with it (automations/store.py). Kept across anchor_paths' copy.
    _path_given: bool = PrivateAttr(False)

    @model_validator(mode="after")
    def _one_store(self) -> StoreSettings:
        self._path_given = "path" in self.model_fields_set
        if self.url is not None and self._path_given:
            raise ValueError(
                "set either path (a SQLite file) or url (PostgreSQL), not both; "
                "`automations ledger copy` moves a SQLite ledger to PostgreSQL"
            )
        return self

    @property
    def path_given(self) -> bool:
        """The file sets ``path`` (rather than leaving the default)."""
        return self._path_given


def check_public_url(value: str) -> str:
    """An absolute http(s) URL with a host, no query or fragment; kept without a final '/'."""
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or any(c.isspace() or c in "\"'<>" for c in value)
    ):
        raise ValueError(
            f"{value!r} is not a public URL like https://automations.example.com "
            "(http or https, a host, an optional path; no query)"
        )
    return value.rstrip("/")


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
    public_url: str | None = Field(
        None,
        description="Where people reach this listener (e.g. https://automations.example.com, "
        "behind your proxy): a digest's 'and N more' changes link to its page there.",
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return None if value is None else check_public_url(value)

    @model_validator(mode="after")
    def _served(self) -> ServerSettings:
        if self.public_url is not None and not self.enabled:
            raise ValueError("public_url needs the listener: set enabled = true")
        return self


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
    channels: list[AnyChannel] = Field(
        default_factory=list,
        description="Where rules send notifications (see README, Notifications).",
    )
    webhooks: WebhookSettings = Field(
        default_factory=WebhookSettings,
        description="incident.io webhooks on the [server] listener (see README, Webhooks).",
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
    channels: tuple[ChannelOptions, ...] = ()
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)

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
    """The file's tables; ConfigError naming the file for anything that is not UTF-8 TOML.

    A leading UTF-8 byte order mark (some Windows editors write one) is skipped.
    """
    try:
        raw = read_regular_file(path)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file (pass --config or set AUTOMATIONS_CONFIG)"
        ) from None
    except RefusedFile as exc:
        raise ConfigError(f"{path}: {exc}; --config names the TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); save it as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per level
        raise ConfigError(
            f"{path}: not valid TOML: arrays or inline tables nested too deeply "
            "(hundreds of levels; a config needs a few)"
        ) from None


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
        tagged: Tagged = {"rules": rule_models, "channels": CHANNEL_MODELS}
        for problem in validation_problems(exc, model, tagged):
            problems.add(problem)
        problems.raise_if_any(path)
        raise  # unreachable: a ValidationError has at least one error
    parsed = anchor_paths(parsed, path.absolute().parent)
    rules: list[RuleOptions] = list(parsed.rules)  # type: ignore[attr-defined]
    names = [rule.name for rule in rules]
    for problem in repeated_names("rules", names, "they are part of every event key").values():
        problems.add(problem)
    for problem in _digest_problems(parsed.smtp, parsed.digests):
        problems.add(problem)
    for problem in channel_problems(parsed.smtp, parsed.channels):
        problems.add(problem)
    for problem in unknown_channel_problems(rules, parsed.channels):
        problems.add(problem)
    for problem in webhook_problems(parsed.server.enabled, parsed.webhooks):
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
        channels=tuple(parsed.channels),
        webhooks=parsed.webhooks,
    )


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
    names = [digest.name for digest in digests]
    problems = list(repeated_names("digests", names, "they key the outbox").values())
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
