"""Environment and secrets: never in the TOML file, never in logs.

Each secret comes from a variable or from a file named by the same variable
with ``_FILE`` (Docker and Kubernetes secrets): the API key from
``INCIDENT_IO_API_KEY`` / ``INCIDENT_IO_API_KEY_FILE``, the SMTP password from
``AUTOMATIONS_SMTP_PASSWORD`` / ``AUTOMATIONS_SMTP_PASSWORD_FILE``. The config
file location comes from ``AUTOMATIONS_CONFIG``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from automations.env_secrets import SECRET_FILE_LIMIT, env_secret, read_secret
from automations.errors import ConfigError

__all__ = ["DEFAULT_CONFIG", "SECRET_FILE_LIMIT", "Environment", "env_secret"]

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
        key = read_secret(
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
        return read_secret(
            "AUTOMATIONS_SMTP_PASSWORD",
            self.automations_smtp_password,
            self.automations_smtp_password_file,
        )
