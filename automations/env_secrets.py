"""A secret from a variable or from the file its ``_FILE`` variable names (Docker and
Kubernetes secrets); its content never appears in a message. Without pydantic-settings, so
``validate --offline`` can read one (the store URL) quickly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from automations.errors import ConfigError, FileTooLarge, RefusedFile
from automations.files import read_regular_file


def env_secret(variable: str, environ: Mapping[str, str] | None = None) -> SecretStr | None:
    """A secret whose variable name is made at run time (a channel's), from ``variable``
    or the file named by ``variable``_FILE, like the fixed ones above."""
    env = os.environ if environ is None else environ
    value, file = env.get(variable), env.get(f"{variable}_FILE")
    return read_secret(variable, SecretStr(value) if value else None, Path(file) if file else None)


SECRET_FILE_LIMIT = 64 * 1024  # a key or password is short; more is the wrong file


def read_secret(variable: str, value: SecretStr | None, file: Path | None) -> SecretStr | None:
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
