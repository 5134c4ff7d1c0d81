"""[[channels]]: a corpus of broken tables, secrets from the environment, the documented example,
and what `validate --offline` imports."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from automations.checks import check_config
from automations.config import config_json_schema, load_config
from automations.errors import ConfigError
from automations.notify.channels.build import build_senders
from automations.notify.config import ChannelOptions
from automations.notify.sender import ChannelPolicy
from automations.settings import Environment
from tests.channel_support import write_toml
from tests.secret_values import URL_TOKEN, WEBHOOK_KEY

ROOT = Path(__file__).resolve().parents[1]
SMTP = (
    '[smtp]\nhost = "127.0.0.1"\nport = 2525\nsecurity = "none"\nsender = "Bot <bot@example.com>"\n'
)
HOOK = '[[channels]]\nname = "ops-hook"\ntype = "webhook"\nurl = "https://hooks.example.com/in"\n'
RULE = '[[rules]]\nname = "esc"\ntype = "escalate_severity"\nevery = "1m"\nsteps = [ { after = "2h", to = "Major" } ]\n'
MAIL = '[[channels]]\nname = "leads"\ntype = "email"\nto = ["cto@example.com"]\n'

# (file body, expected line): refused when the file loads, with the key path.
BROKEN = [
    ('[[channels]]\nname = "x"\n', "channels[0].type: is required; known: email, webhook, apprise, escalation"),
    ('[[channels]]\nname = "x"\ntype = "sms"\n', "channels[0].type: 'sms' is not a channel type; known: email, webhook, apprise, escalation"),
    (HOOK.replace('"ops-hook"', '"Ops Hook"'), "channels[0].name: 'Ops Hook' must be lowercase letters, digits, - and _"),
    (HOOK.replace('name = "ops-hook"\n', ""), "channels[0].name: is required"),
    (HOOK + HOOK, "channels[1].name: 'ops-hook' is already used by channels[0]"),
    (HOOK + HOOK.replace("ops-hook", "ops_hook"), "channels[1].name: 'ops_hook' and 'ops-hook' (channels[0]) share the variables AUTOMATIONS_CHANNEL_OPS_HOOK_*"),
    (HOOK + "colour = 'red'\n", "channels[0].colour: unknown key; allowed: expire_after, include_private, max_per_hour, name, templates_dir, timeout_seconds, type, url"),
    (HOOK + "max_per_hour = 0\n", "channels[0].max_per_hour: 0 is too small; the smallest allowed is 1"),
    (HOOK + "max_per_hour = 'lots'\n", "channels[0].max_per_hour: expected a whole number"),
    (HOOK + "expire_after = '1 day'\n", "channels[0].expire_after: '1 day' is not a duration like 90s, 15m, 2h, 7d"),
    (HOOK + "include_private = 'yes'\n", "channels[0].include_private: expected true or false (without quotes); got 'yes'"),
    (HOOK + "timeout_seconds = 0\n", "channels[0].timeout_seconds: 0 is too small; it must be more than 0"),
    (HOOK.replace("https://hooks.example.com/in", f"ftp://files.example.com/in?token={URL_TOKEN}"), "channels[0].url: must be an http:// or https:// URL, e.g. https://hooks.example.com/incidents; got ftp scheme"),
    (HOOK.replace("https://hooks.example.com/in", "https:///in"), "channels[0].url: 'https:///in' has no host name"),
    (HOOK.replace("https://hooks.example.com/in", "https://hooks.example.com/a b"), "channels[0].url: must be one URL without spaces or line breaks"),
    (HOOK.replace('url = "https://hooks.example.com/in"\n', ""), "channels[0].url: is required"),
    (HOOK + 'secret = "whsec_abc"\n', "channels[0].secret: unknown key"),
    (SMTP + MAIL.replace('to = ["cto@example.com"]\n', ""), 'channels[0]: needs a recipient in to, cc or bcc, e.g. to = ["cto@example.com"]'),
    (SMTP + MAIL.replace("cto@example.com", "cto"), "channels[0].to[0]: 'cto' is not an email address"),
    (SMTP + MAIL + 'bcc = ["a@example.com, b@example.com"]\n', "channels[0].bcc[0]: 'a@example.com, b@example.com' holds 2 addresses"),
    (MAIL, 'channels[0]: type = "email" needs [smtp] with host and sender'),
    ('[[channels]]\nname = "chat"\ntype = "apprise"\nurls = []\n', "channels[0].urls: needs at least 1 entry; got []"),
    (f'[[channels]]\nname = "chat"\ntype = "apprise"\nurls = ["ntfy://ntfy.sh/x", "nosuch://{URL_TOKEN}@host/{URL_TOKEN}"]\n', "channels[0].urls[1]: nosuch:// is not a scheme apprise knows"),
    (f'[[channels]]\nname = "chat"\ntype = "apprise"\nurls = ["discord://{URL_TOKEN}"]\n', "channels[0].urls[0]: apprise cannot use this discord:// URL: a part is missing or malformed"),
    (f'[[channels]]\nname = "chat"\ntype = "apprise"\nurls = ["{URL_TOKEN}"]\n', "channels[0].urls[0]: is not an apprise URL like ntfy://ntfy.sh/ops-alerts (no scheme://)"),
    ('[[channels]]\nname = "page"\ntype = "escalation"\n', 'channels[0]: give exactly one of escalation_path (e.g. "Platform primary") or user_ids'),
    ('[[channels]]\nname = "page"\ntype = "escalation"\nescalation_path = "P"\nuser_ids = ["01A"]\n', "channels[0]: give exactly one of escalation_path"),
    ('[[channels]]\nname = "page"\ntype = "escalation"\nuser_ids = ["01A/../x"]\n', "channels[0].user_ids[0]: '01A/../x' is not allowed"),
    ('[channels]\nname = "x"\n', "channels: expected tables, each one written as [[channels]]"),
    (RULE + 'notify = ["ghost"]\n', "rules[0].notify[0]: 'ghost' is not a channel; channels: (none configured: add [[channels]])"),
    (HOOK + RULE.replace("escalate_severity", "notice").replace('steps = [ { after = "2h", to = "Major" } ]', 'after = "1h"\nchannels = ["ops-hook", "ghost"]'), "rules[0].channels[1]: 'ghost' is not a channel; channels: ops-hook"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "expected"), BROKEN)
def test_each_broken_channel_is_refused_with_its_key_path(
    tmp_path_factory: pytest.TempPathFactory, body: str, expected: str
) -> None:
    """One clear line naming channels[i] and the key; a URL's token is never repeated."""
    # Not in tmp_path: some files hold a token on purpose, and tmp_path is searched for leaks.
    path = write_toml(tmp_path_factory.mktemp("corpus"), body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert expected in message, message
    assert URL_TOKEN not in message
    assert "Input should" not in message  # pydantic's own words never reach the reader


def test_every_broken_channel_of_a_file_is_reported_in_one_run(tmp_path: Path) -> None:
    """validate --offline: all the channels' problems at once, each with its key path."""
    body = "".join(
        HOOK.replace("ops-hook", f"hook-{index}") + line
        for index, line in enumerate(
            [
                "max_per_hour = 0\n",
                "expire_after = '1 day'\n",
                "include_private = 'yes'\n",
                "timeout_seconds = 0\n",
                "colour = 'red'\n",
            ]
        )
    )
    path = write_toml(tmp_path, body)
    result = subprocess.run(
        [sys.executable, "-m", "automations", "validate", "--offline", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 78
    assert f"{path}: 5 problems:" in result.stderr
    for index, key in enumerate(
        ["max_per_hour", "expire_after", "include_private", "timeout_seconds", "colour"]
    ):
        assert f"  channels[{index}].{key}: " in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "has no signing secret: set AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET (or AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET_FILE)"),
        (WEBHOOK_KEY, "AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET (or its _FILE) must start with 'whsec_'"),
        (f"whsec_{WEBHOOK_KEY[:-2]}!!", "AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET (or its _FILE) is not base64 after 'whsec_'"),
        (f"whsec_{WEBHOOK_KEY[:12]}", "holds a key of 9 bytes; Standard Webhooks asks for 24 to 64"),
    ],
)  # fmt: skip
def test_a_missing_or_malformed_webhook_secret_names_the_variable_not_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, expected: str
) -> None:
    """At start-up (and in validate): the channel and the variable, never the secret itself."""
    monkeypatch.delenv("AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET_FILE", raising=False)
    if value is None:
        monkeypatch.delenv("AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET", raising=False)
    else:
        monkeypatch.setenv("AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET", value)
    config = load_config(write_toml(tmp_path, HOOK))
    for check in (
        lambda: build_senders(config, None),
        lambda: check_config(config, None, Environment()),
    ):
        with pytest.raises(ConfigError) as info:
            check()
        message = str(info.value)
        assert message.startswith(f"{config.path}: channels[0]: "), message
        assert expected in message, message
        assert WEBHOOK_KEY[:12] not in message
    check_config(config, None, None)  # validate --offline: no secrets read


def test_the_apprise_urls_of_the_environment_are_checked_without_showing_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AUTOMATIONS_CHANNEL_CHAT_URLS: absent, or holding a bad URL, is a ConfigError at start-up."""
    config = load_config(write_toml(tmp_path, '[[channels]]\nname = "chat"\ntype = "apprise"\n'))
    monkeypatch.delenv("AUTOMATIONS_CHANNEL_CHAT_URLS", raising=False)
    with pytest.raises(ConfigError, match=r"channels\[0\]\.urls: none given for 'chat'.*CHAT_URLS"):
        build_senders(config, None)
    monkeypatch.setenv("AUTOMATIONS_CHANNEL_CHAT_URLS", f"ntfy://ntfy.sh/x nosuch://{URL_TOKEN}")
    with pytest.raises(ConfigError) as info:
        build_senders(config, None)
    assert str(info.value) == (
        f"{config.path}: channels[0]: URL 1 of AUTOMATIONS_CHANNEL_CHAT_URLS: nosuch:// is not a "
        "scheme apprise knows, nor a service's own URL it recognises (see apprise's list of "
        "services)"
    )


def test_a_template_that_fails_for_one_event_is_refused_at_start_up(tmp_path: Path) -> None:
    """Every part is rendered for every event type at start-up: a held-back summary has no
    incident, so a subject that needs one is a ConfigError then, not a lost notification."""
    for folder, name, text in (("mine", "email.subject.j2", "{{ incident.reference }}"),
                               ("broken", "apprise.md.j2", "{% if %}")):  # fmt: skip
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).write_text(text)
    chat = '[[channels]]\nname = "chat"\ntype = "apprise"\nurls = ["ntfy://ntfy.sh/x"]\n'
    path = write_toml(
        tmp_path,
        SMTP + MAIL + 'templates_dir = "mine"\n' + chat + 'templates_dir = "broken"\n',
    )
    with pytest.raises(ConfigError) as info:
        check_config(load_config(path), None, None)
    assert info.value.problems == [
        "channels[0].templates_dir: template 'email.subject.j2': 'None' has no attribute "
        "'reference'",
        "channels[1].templates_dir: template 'apprise.md.j2', line 1: Expected an expression, "
        "got 'end of statement block'",
    ]
    missing = write_toml(tmp_path, SMTP + MAIL + 'templates_dir = "nowhere"\n', "b.toml")
    with pytest.raises(ConfigError, match=r"channels\[0\]\.templates_dir: .*nowhere: no such dir"):
        check_config(load_config(missing), None, None)


def test_channel_options_are_the_outboxs_policy(tmp_path: Path) -> None:
    """Defaults (30 an hour, 24h, private off), "off" for no limit; each is a ChannelPolicy."""
    path = write_toml(tmp_path, HOOK + HOOK.replace("ops-hook", "quiet") + 'max_per_hour = "off"\n'
                      'include_private = true\nexpire_after = "2h"\n')  # fmt: skip
    first, second = load_config(path).channels
    assert (first.include_private, first.max_per_hour, first.expire_after) == (
        False,
        30,
        timedelta(hours=24),
    )
    assert (second.include_private, second.max_per_hour, second.expire_after) == (
        True,
        None,
        timedelta(hours=2),
    )
    policy: ChannelPolicy = first  # mypy checks the protocol; this line keeps it honest
    assert isinstance(policy, ChannelOptions)
    assert second.model_dump()["max_per_hour"] == "off"


def test_the_documented_channels_in_example_toml_are_valid(tmp_path: Path) -> None:
    """config/example.toml's [[channels]], the commented ones uncommented, load: all four types."""
    text = (ROOT / "config" / "example.toml").read_text()
    block = text[text.index("# Notification channels") :]
    tables = "\n".join(
        line[2:] if line.startswith("# [[") or re.match(r"# [a-z_]+ = ", line) else line
        for line in block.splitlines()
    )
    config = load_config(write_toml(tmp_path, SMTP + tables))
    assert [type(c).__name__ for c in config.channels] == [
        "EmailChannel",
        "WebhookChannel",
        "AppriseChannel",
        "EscalationChannel",
    ]


def test_the_schema_knows_every_channel_type() -> None:
    """`automations schema` lists the four types for editors."""
    text = str(config_json_schema())
    for name in ("EmailChannel", "WebhookChannel", "AppriseChannel", "EscalationChannel"):
        assert name in text


def test_validate_offline_imports_no_sender_library(tmp_path: Path) -> None:
    """Email, webhook and escalation channels: validate --offline loads neither apprise, httpx
    nor standardwebhooks (-X importtime); an apprise channel loads apprise to check its URLs."""
    body = (
        SMTP + MAIL + HOOK + '[[channels]]\nname = "p"\ntype = "escalation"\nuser_ids = ["01A"]\n'
    )
    heavy = re.compile(r"\| (apprise|httpx|standardwebhooks)$", re.MULTILINE)

    def imported(path: Path) -> set[str]:
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "automations", "validate", "--offline",
             "--config", str(path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return {m.group(1) for m in heavy.finditer(result.stderr)}

    assert imported(write_toml(tmp_path, body)) == set()
    chat = '[[channels]]\nname = "chat"\ntype = "apprise"\nurls = ["ntfy://ntfy.sh/x"]\n'
    assert imported(write_toml(tmp_path, body + chat, "b.toml")) == {"apprise"}
