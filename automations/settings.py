"""Environment and secrets: never in the TOML file, never in logs.

The API key comes from ``INCIDENT_IO_API_KEY`` or a file named by
``INCIDENT_IO_API_KEY_FILE`` (Docker and Kubernetes secrets); the SMTP password
from ``AUTOMATIONS_SMTP_PASSWORD``; the config file location from
``AUTOMATIONS_CONFIG``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from automations.errors import ConfigError

DEFAULT_CONFIG = Path("config/automations.toml")


class Environment(BaseSettings):
    """What the process reads from its environment."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    incident_io_api_key: SecretStr | None = None
    incident_io_api_key_file: Path | None = None
    automations_smtp_password: SecretStr | None = None
    automations_config: Path = DEFAULT_CONFIG

    def api_key(self) -> SecretStr:
        """The API key, from the variable or the file; a clear error when neither is set."""
        if self.incident_io_api_key is not None and self.incident_io_api_key.get_secret_value():
            return self.incident_io_api_key
        if self.incident_io_api_key_file is not None:
            path = self.incident_io_api_key_file
            try:
                key = path.read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"INCIDENT_IO_API_KEY_FILE: cannot read {path}: {exc.strerror}"
                ) from None
            if not key:
                raise ConfigError(f"INCIDENT_IO_API_KEY_FILE: {path} is empty")
            return SecretStr(key)
        raise ConfigError(
            "no incident.io API key: set INCIDENT_IO_API_KEY, or INCIDENT_IO_API_KEY_FILE "
            "to a file holding it"
        )
