"""Global options (--config, --log-level, --log-format) before or after a command's name.

Click reads options where they are declared: a group's before the command's
name, a command's after it. Here the group and every command declare all of
them; each value given is remembered in ``ctx.meta`` (shared by the whole
command line and filled left to right), so the one nearest the end wins and
the command sees a single effective value.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_CONFIG = "config/automations.toml"
GIVEN = "automations.global_options"  # ctx.meta key: the global options given so far


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Keep a global option's value if given. ``ctx.meta`` is shared by the whole command
    line and is filled left to right, so a value after the subcommand's name wins."""
    source = ctx.get_parameter_source(param.name) if param.name else None
    if value is not None and source not in (None, click.ParameterSource.DEFAULT):
        ctx.meta.setdefault(GIVEN, {})[param.name] = value
    return value


def _given(ctx: click.Context, name: str, default: Any) -> Any:
    return ctx.meta.get(GIVEN, {}).get(name, default)


def _global_options(*, config: bool) -> list[click.Parameter]:
    """--log-level and --log-format (and --config for groups): accepted before the command's
    name and after it."""
    options: list[click.Parameter] = [
        click.Option(
            ["--log-level"],
            type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
            default="INFO",
            callback=_remember,
            expose_value=False,
            show_default=True,
        ),
        click.Option(
            ["--log-format"],
            type=click.Choice(["text", "json"]),
            default="text",
            callback=_remember,
            expose_value=False,
            show_default=True,
            help="json: one JSON object per line.",
        ),
    ]
    if config:  # a group's --config is only remembered, for the commands below it
        options.insert(0, click.Option(["--config", "config_path"], **config_settings(None)))
    return options


def config_settings(
    default: Callable[[], Path] | None,
    shown: str = f"$AUTOMATIONS_CONFIG or {DEFAULT_CONFIG}",
    text: str = "The TOML file.",
) -> dict[str, Any]:
    """On a command (``default`` set) the value passed is the one in effect: given after the
    command's name, else given before it, else the default."""

    def effective(ctx: click.Context, param: click.Parameter, value: Path | None) -> Any:
        _remember(ctx, param, value)
        return value if default is None else _given(ctx, "config_path", None) or default()

    return {
        # Any path: load_config says in one line what is wrong with it (a directory, a FIFO).
        "type": click.Path(path_type=Path),
        "callback": effective,
        "expose_value": default is not None,
        "show_default": shown,
        "help": text,
    }


def _default_config() -> Path:
    return Path(os.environ.get("AUTOMATIONS_CONFIG", DEFAULT_CONFIG))


def config_option(func: F) -> F:
    """The command gets ``config_path``: --config given on either side of its name."""
    return click.option("--config", "config_path", **config_settings(_default_config))(func)


class Command(click.Command):
    """A command that takes the global options too, and sets up logging from them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_global_options(config=False))

    def invoke(self, ctx: click.Context) -> Any:
        from automations.logs import setup_logging

        setup_logging(_given(ctx, "log_level", "INFO"), _given(ctx, "log_format", "text"))
        return super().invoke(ctx)


class Group(click.Group):
    """A group that takes the global options, for its commands and subgroups to use."""

    command_class = Command
    group_class = type  # subgroups (``digest``) are Groups too

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_global_options(config=True))
