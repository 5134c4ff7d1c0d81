"""Config: a corpus of broken files, each refused with file, key path and what is allowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from automations.config import config_json_schema, load_config
from automations.errors import ConfigError
from automations.runtime import build_rules
from automations.settings import Environment
from tests.factories import CATALOG

ROOT = Path(__file__).resolve().parents[1]

GOOD_RULE = """
[[rules]]
name = "esc"
type = "escalate_severity"
every = "1m"
steps = [ { after = "2h", to = "Major" } ]
"""

# (file body, expected fragment): problems found without the API.
OFFLINE_CASES = [
    ("[incident_io\n", "not valid TOML"),
    (
        '[[rules]]\nname = "x"\nevery = "1m"\n',
        "rules[0].type: is required; known: escalate_severity, notice, sync_status",
    ),
    (
        '[[rules]]\nname = "x"\ntype = "escalate"\nevery = "1m"\n',
        "rules[0].type: 'escalate' is not a rule type; known: escalate_severity, notice, sync_status",
    ),
    (
        GOOD_RULE.replace('after = "2h"', 'after = "2 hours"'),
        "rules[0].steps[0].after: '2 hours' is not a duration like 90s, 15m, 2h, 7d",
    ),
    (
        GOOD_RULE.replace('every = "1m"', "every = 60"),
        "rules[0].every: 60 is not a duration like 90s, 15m, 2h, 7d",
    ),
    (GOOD_RULE.replace('every = "1m"', 'cron = "0 8 * * *"'), "rules[0]: cron needs a timezone"),
    (GOOD_RULE.replace('every = "1m"', ""), "rules[0]: give exactly one of every"),
    (
        GOOD_RULE + "colour = 'red'\n",
        "rules[0].colour: unknown key; allowed: announce, cron, enabled, every, max_actions_per_cycle, max_actions_per_day, name, notify, notify_incident_channel, since, steps",
    ),
    (
        GOOD_RULE.replace('name = "esc"', 'name = "Esc Rule"'),
        "rules[0].name: 'Esc Rule' must be lowercase letters, digits, - and _",
    ),
    (
        GOOD_RULE + "max_actions_per_cycle = 0\n",
        "rules[0].max_actions_per_cycle: 0 is too small; the smallest allowed is 1",
    ),
    (
        GOOD_RULE + "notify_incident_channel = 'yes'\n",
        "rules[0].notify_incident_channel: expected true or false (without quotes); got 'yes'",
    ),
    (
        GOOD_RULE + "where = { status_category = ['active'] }\n",
        "rules[0].where.status_category[0]: 'active' is not allowed",
    ),
    (
        GOOD_RULE + "where = { colour = ['red'] }\n",
        "rules[0].where.colour: unknown key; allowed: custom_field, incident_type, mode, role, severity",
    ),
    (
        GOOD_RULE.replace('steps = [ { after = "2h", to = "Major" } ]', "steps = []"),
        "rules[0].steps: needs at least 1 entry; got []",
    ),
    (GOOD_RULE + GOOD_RULE, "rules[1].name: 'esc' is already used by rules[0]"),
    (
        "[incident_io]\nrequests_per_minute = 5000\n",
        "incident_io.requests_per_minute: 5000 is too large; the largest allowed is 1200",
    ),
    (
        "[incident_io]\napi_key = 'inc_secret'\n",
        "incident_io.api_key: unknown key; allowed: base_url, max_clock_skew, requests_per_minute",
    ),
    (
        "[stor]\npath = 'x.db'\n",
        "stor: unknown key; allowed: channels, digests, incident_io, rules, server, smtp, store",
    ),
    (
        '[[rules]]\nname = "s"\ntype = "sync_status"\nevery = "1m"\n',
        "rules[0]: give exactly one of to_status or mirror",
    ),
    (
        '[[rules]]\nname = "s"\ntype = "sync_status"\nevery = "1m"\nto_status = "Closed"\nrequire = { idle_for = "a week" }\n',
        "rules[0].require.idle_for: 'a week' is not a duration",
    ),
    (
        '[[rules]]\nname = "s"\ntype = "sync_status"\nevery = "1m"\nto_status = "Closed"\nrequire = { postmortem = "yes" }\n',
        "rules[0].require.postmortem: 'yes' is not allowed",
    ),
    ("[server]\nport = 70000\n", "server.port: 70000 is too large; the largest allowed is 65535"),
    (
        "[webhooks]\nenabled = true\n",
        "webhooks.enabled: needs [server] enabled = true: incident.io's deliveries arrive on the [server] listener",
    ),
    (
        '[webhooks]\npath = "webhooks/incident-io"\n',
        "webhooks.path: 'webhooks/incident-io' is not a URL path: it starts with / and has no spaces, query or fragment",
    ),
    ('[webhooks]\npath = "/hook?x=1"\n', "webhooks.path: '/hook?x=1' is not a URL path"),
    (
        '[webhooks]\npath = "/metrics"\n',
        "webhooks.path: '/metrics' is taken: use a path of its own",
    ),
    (
        "[webhooks]\nmax_body_bytes = 10\n",
        "webhooks.max_body_bytes: 10 is too small; the smallest allowed is 1024",
    ),
    (
        '[webhooks]\ntolerance = "2h"\n',
        "webhooks.tolerance: 2h is outside 30s to 1h; Standard Webhooks uses 5m",
    ),
    (
        "[webhooks]\ntolerance = 300\n",
        "webhooks.tolerance: 300 is not a duration like 90s, 15m, 2h, 7d",
    ),
    (
        '[webhooks]\nsecret = "whsec_abc"\n',
        "webhooks.secret: unknown key; allowed: enabled, max_body_bytes, path, tolerance",
    ),
    (
        '[server]\nenabled = "yes"\n',
        "server.enabled: expected true or false (without quotes); got 'yes'",
    ),
    (
        '[incident_io]\nbase_url = "ftp://x"\n',
        "incident_io.base_url: 'ftp://x' must start with http:// or https://",
    ),
    (
        GOOD_RULE.replace('every = "1m"', 'cron = "61 * * * *"\ntimezone = "UTC"'),
        "rules[0].cron: '61 * * * *' is not a cron expression like '0 8 * * mon-fri'",
    ),
    (
        GOOD_RULE.replace('every = "1m"', 'cron = "0 8 * * *"\ntimezone = "Mars/Olympus"'),
        "rules[0].timezone: 'Mars/Olympus' is not an IANA timezone like Europe/London",
    ),
    (
        GOOD_RULE.replace('every = "1m"', 'every = "1m"\ntimezone = "UTC"'),
        "rules[0]: timezone only applies to cron schedules",
    ),
    ('rules = "x"\n', "rules: expected tables, each one written as [[rules]]; got 'x'"),
    (
        GOOD_RULE.replace(
            'steps = [ { after = "2h", to = "Major" } ]',
            'steps = [ { after = "6h", to = "Major" }, { after = "2h", to = "Critical" } ]',
        ),
        "rules[0].steps: steps must be in increasing `after` order (2h comes after 6h)",
    ),
    (
        "[store]\npath = 5\n",
        'store.path: expected a file path in quotes, e.g. "automations.db"; got 5',
    ),
    (
        GOOD_RULE.replace('every = "1m"', 'every = "0s"'),
        "rules[0].every: '0s' is zero; use a duration like 90s",
    ),
    (GOOD_RULE + "since = 5\n", 'rules[0].since: expected text in quotes, e.g. "created"; got 5'),
    (
        GOOD_RULE.replace('every = "1m"', 'every = "1m"\nevery = "2m"'),
        "not valid TOML: Cannot overwrite a value",
    ),
    # Type errors in a person's words: what was expected, an example, what was given.
    (
        GOOD_RULE + 'where = { severity = "Minor" }\n',
        "rules[0].where.severity: expected a list, e.g. [\"Minor\"]; got 'Minor'",
    ),
    (
        GOOD_RULE + "where = { severity = [1] }\n",
        'rules[0].where.severity[0]: expected text in quotes, e.g. "Minor"; got 1',
    ),
    (
        GOOD_RULE + 'where = { custom_field = { Team = "Payments" } }\n',
        "rules[0].where.custom_field.Team: expected a list, e.g. [\"Payments\"]; got 'Payments'",
    ),
    (
        GOOD_RULE + 'where = { custom_field = ["Team"] }\n',
        "rules[0].where.custom_field: expected a table, e.g. { Team = [\"Payments\"] }; got ['Team']",
    ),
    (
        GOOD_RULE + 'where = "live"\n',
        "rules[0].where: expected a table, e.g. { key = value }; got 'live'",
    ),
    (
        GOOD_RULE + "where = { role = { 'Incident Lead' = 'yes' } }\n",
        "rules[0].where.role.Incident Lead: 'yes' is not allowed; "
        "choose 'assigned' or 'unassigned'",
    ),
    (
        GOOD_RULE + 'max_actions_per_cycle = "10"\n',
        "rules[0].max_actions_per_cycle: expected a whole number, e.g. 10; got '10'",
    ),
    (
        GOOD_RULE + "max_actions_per_cycle = 2.5\n",
        "rules[0].max_actions_per_cycle: expected a whole number, e.g. 10; got 2.5",
    ),
    (
        '[incident_io]\ntimeout_seconds = "fast"\n',
        "incident_io.timeout_seconds: expected a number, e.g. 30.0; got 'fast'",
    ),
    (
        "[incident_io]\ntimeout_seconds = 0\n",
        "incident_io.timeout_seconds: 0 is too small; it must be more than 0",
    ),
    (
        "[incident_io]\nretry_attempts = 0\n",
        "incident_io.retry_attempts: 0 is too small; the smallest allowed is 1",
    ),
    (
        GOOD_RULE + "enabled = 1\n",
        "rules[0].enabled: expected true or false (without quotes); got 1",
    ),
    (
        GOOD_RULE + 'notify_incident_channel = "true"\n',
        "rules[0].notify_incident_channel: expected true or false (without quotes); got 'true'",
    ),
    (
        GOOD_RULE.replace('to = "Major"', "to = 5"),
        'rules[0].steps[0].to: expected text in quotes, e.g. "Major"; got 5',
    ),
    (
        GOOD_RULE.replace(', to = "Major"', ""),
        "rules[0].steps[0].to: is required",
    ),
    (
        GOOD_RULE.replace('steps = [ { after = "2h", to = "Major" } ]', 'steps = "2h"'),
        "rules[0].steps: expected a list of tables, e.g. [ { after = ..., to = ... } ]; got '2h'",
    ),
    (
        GOOD_RULE.replace('to = "Major"', 'to = "Major", notify = true'),
        "rules[0].steps[0].notify: unknown key; allowed: after, to",
    ),
    (
        GOOD_RULE.replace('name = "esc"', f'name = "{"e" * 65}"'),
        "rules[0].name: is longer than the 64 characters allowed",
    ),
    ('incident_io = "x"\n', "incident_io: expected a table, e.g. { key = value }; got 'x'"),
    ('[server]\nhost = ""\n', "server.host: must not be empty"),
    (
        GOOD_RULE.replace('every = "1m"', "every = true"),
        "rules[0].every: true is not a duration like 90s, 15m, 2h, 7d or 1h30m",
    ),
]

# pydantic's own wording: none of it may reach a user.
PYDANTIC_PHRASES = (
    "input should be",
    "validation error",
    "type=",
    "for further information",
    "errors.pydantic.dev",
    "should match pattern",
    "should have at",
    "value error,",
    "extra inputs are not permitted",
    "valid dictionary",
    "field required",
)

# Problems only the catalog (the API's names) can reveal.
CATALOG_CASES = [
    (
        GOOD_RULE.replace('to = "Major"', 'to = "Sev 1"'),
        "rules[0].steps[0].to: 'Sev 1' is not a known severity; valid: Critical, Major, Minor",
    ),
    (
        GOOD_RULE + "where = { severity = ['Minor', 'Tiny'] }\n",
        "rules[0].where.severity[1]: 'Tiny' is not a known severity",
    ),
    (
        GOOD_RULE + "where = { custom_field = { Teem = ['Payments'] } }\n",
        "rules[0].where.custom_field: 'Teem' is not a known custom field; valid: Affected service, Phase, Team",
    ),
    (
        GOOD_RULE + "where = { custom_field = { Team = ['Payment'] } }\n",
        "rules[0].where.custom_field.Team[0]: 'Payment' is not a known option of 'Team'; valid: Payments, Platform",
    ),
    (
        GOOD_RULE + "where = { role = { Lead = 'assigned' } }\n",
        "rules[0].where.role: 'Lead' is not a known incident role",
    ),
    (
        GOOD_RULE + 'since = "Impact"\n',
        "rules[0].since: 'Impact' is not a known incident timestamp (or 'created', 'live', 'severity')",
    ),
    (
        '[[rules]]\nname = "s"\ntype = "sync_status"\nevery = "1m"\nwhere = { status_category = ["triage"] }\nto_status = "Declined"\n',
        "rules[0].to_status: the API refuses moving triage incidents to 'Declined' (declined)",
    ),
    (
        '[[rules]]\nname = "s"\ntype = "sync_status"\nevery = "1m"\nwhere = { status_category = ["learning"] }\nto_status = "Shut"\n',
        "rules[0].to_status: 'Shut' is not a known incident status",
    ),
]


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "automations.toml"
    path.write_text(body)
    return path


@pytest.mark.parametrize(("body", "expected"), OFFLINE_CASES)
def test_offline_errors(tmp_path: Path, body: str, expected: str) -> None:
    """Each broken file gives one clear message that starts with the file name."""
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert expected in message, message
    assert info.value.exit_code == 78
    assert not [p for p in PYDANTIC_PHRASES if p in message.lower()], message


@pytest.mark.parametrize(("body", "expected"), CATALOG_CASES)
def test_name_errors(tmp_path: Path, body: str, expected: str) -> None:
    """Unknown names and refused moves are reported with the key path and the valid names."""
    path = write(tmp_path, body)
    config = load_config(path)
    with pytest.raises(ConfigError) as info:
        build_rules(config, CATALOG)
    assert f"{path}: {expected}" in str(info.value), str(info.value)


def test_every_shipped_config_validates() -> None:
    """Every file in config/ parses, and its names resolve against the sandbox's organisation."""
    files = sorted((ROOT / "config").glob("*.toml"))
    assert files, "config/ has no example"
    for path in files:
        load_config(path)


def test_example_documents_every_key() -> None:
    """config/example.toml mentions every option of every rule type and every settings key."""
    text = (ROOT / "config" / "example.toml").read_text()
    schema = config_json_schema()
    keys: set[str] = set()

    def collect(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.get("properties", {}).items():
                keys.add(key)
                collect(value)
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(schema)
    missing = sorted(k for k in keys if k not in text)
    assert not missing, f"config/example.toml does not document: {missing}"


def test_missing_api_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No key anywhere, an unreadable key file and an empty one are each a clear error."""
    monkeypatch.delenv("INCIDENT_IO_API_KEY", raising=False)
    monkeypatch.delenv("INCIDENT_IO_API_KEY_FILE", raising=False)
    with pytest.raises(ConfigError, match="set INCIDENT_IO_API_KEY, or INCIDENT_IO_API_KEY_FILE"):
        Environment().api_key()
    monkeypatch.setenv("INCIDENT_IO_API_KEY_FILE", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="INCIDENT_IO_API_KEY_FILE: cannot read"):
        Environment().api_key()
    (tmp_path / "empty").write_text("\n")
    monkeypatch.setenv("INCIDENT_IO_API_KEY_FILE", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="is empty"):
        Environment().api_key()
    (tmp_path / "key").write_text("inc_from_file\n")
    monkeypatch.setenv("INCIDENT_IO_API_KEY_FILE", str(tmp_path / "key"))
    assert Environment().api_key().get_secret_value() == "inc_from_file"


def test_cli_exit_78_without_traceback(tmp_path: Path) -> None:
    """`automations validate --offline` on a bad file exits 78 with one line per problem."""
    path = write(tmp_path, GOOD_RULE.replace('after = "2h"', 'after = "2 hours"'))
    result = subprocess.run(
        [sys.executable, "-m", "automations", "validate", "--offline", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 78
    assert "Traceback" not in result.stderr
    assert f"{path}: rules[0].steps[0].after: '2 hours' is not a duration" in result.stderr


@pytest.mark.usefixtures("restore_logging")
def test_the_corpus_is_large_and_every_case_exits_78_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real entry point (in-process, for speed), as a user would see them."""
    from automations.cli import main

    assert len(OFFLINE_CASES) + len(CATALOG_CASES) >= 30
    for index, (body, expected) in enumerate(OFFLINE_CASES):
        path = tmp_path / f"broken-{index}.toml"
        path.write_text(body)
        monkeypatch.setattr(
            sys, "argv", ["automations", "validate", "--offline", "--config", str(path)]
        )
        with pytest.raises(SystemExit) as exited:
            main()
        err = capsys.readouterr().err
        assert exited.value.code == 78, (body, err)
        assert err.startswith(f"error: {path}: "), err
        assert expected in err, err
        assert "Traceback" not in err


def test_schema_lists_rule_types() -> None:
    """The JSON Schema knows both built-in rule types, for editor completion."""
    text = str(config_json_schema())
    assert "escalate_severity" in text
    assert "sync_status" in text
