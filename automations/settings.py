"""Environment and secrets: never in the TOML file, never in logs.

Each secret comes from a variable or from a file named by the same variable
with ``_FILE`` (Docker and Kubernetes secrets): the API key from
``INCIDENT_IO_API_KEY`` / ``INCIDENT_IO_API_KEY_FILE``, the SMTP password from
``AUTOMATIONS_SMTP_PASSWORD`` / ``AUTOMATIONS_SMTP_PASSWORD_FILE``. The config
file location comes from ``AUTOMATIONS_CONFIG``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from automations.errors import ConfigError
from automations.files import FileTooLarge, RefusedFile, read_regular_file

DEFAULT_CONFIG = Path("config/automations.toml")


class Environment(BaseSettings):
    """What the process reads from its environment."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    incident_io_api_key: SecretStr | None = None
    incident_io_api_key_file: Path | None = None
    automations_smtp_password: SecretStr | None = None
    automations_smtp_password_file: Path | None = None
    automations_config: Path = DEFAULT_CONFIG

    def api_key(self) -> SecretStr:
        """The API key, from the variable or the file; a clear error when neither is set."""
        key = _secret(
            "INCIDENT_IO_API_KEY", self.incident_io_api_key, self.incident_io_api_key_file
        )
        if key is None:
            raise ConfigError(
                "no incident.io API key: set INCIDENT_IO_API_KEY, or INCIDENT_IO_API_KEY_FILE "
                "to a file holding it"
            )
        return key

    def api_key_source(self) -> str:
        """Where ``api_key()`` finds the key, for messages about a refused key (never the key)."""
        if self.incident_io_api_key is not None and self.incident_io_api_key.get_secret_value():
            return "INCIDENT_IO_API_KEY"
        if self.incident_io_api_key_file is not None:
            return f"the file {self.incident_io_api_key_file} (named by INCIDENT_IO_API_KEY_FILE)"
        return "no variable (neither INCIDENT_IO_API_KEY nor INCIDENT_IO_API_KEY_FILE is set)"

    def smtp_password(self) -> SecretStr | None:
        """The SMTP password from the variable or the file; None when neither is set."""
        return _secret(
            "AUTOMATIONS_SMTP_PASSWORD",
            self.automations_smtp_password,
            self.automations_smtp_password_file,
        )


def env_secret(variable: str, environ: Mapping[str, str] | None = None) -> SecretStr | None:
    """A secret whose variable name is made at run time (a channel's), from ``variable``
    or the file named by ``variable``_FILE, like the fixed ones above."""
    env = os.environ if environ is None else environ
    value, file = env.get(variable), env.get(f"{variable}_FILE")
    return _secret(variable, SecretStr(value) if value else None, Path(file) if file else None)


SECRET_FILE_LIMIT = 64 * 1024  # a key or password is short; more is the wrong file


def _secret(variable: str, value: SecretStr | None, file: Path | None) -> SecretStr | None:
    """``variable`` if set and not empty, else the stripped content of ``file`` (its _FILE).

    The file must be a regular file of at most 64 KiB in UTF-8 (a leading byte order
    mark is skipped); its content never appears in a message.
    """
    if value is not None and value.get_secret_value():
        return value
    if file is None:
        return None
    where = f"{variable}_FILE: {file}"
    try:
        raw = read_regular_file(file, limit=SECRET_FILE_LIMIT)
    except FileTooLarge as exc:
        raise ConfigError(f"{where} {exc}; it should hold the secret alone") from None
    except RefusedFile as exc:
        raise ConfigError(f"{where} {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{variable}_FILE: cannot read {file}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text") from None
    if not text:
        raise ConfigError(f"{variable}_FILE: {file} is empty")
    return SecretStr(text)
