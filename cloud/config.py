"""Cloud configuration: `TECSA_CLOUD_...` environment variables plus secrets read from files.

Any variable may instead be given as `<NAME>_FILE` holding a path, the convention of container
secrets: `TECSA_CLOUD_DATABASE__URL_FILE=/run/secrets/db_url`. Setting both is an error. The
process refuses to start when a secret is a placeholder. See docs/configuration.md.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from cloud.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

ENV_PREFIX = "TECSA_CLOUD_"
_FILE_SUFFIX = "_FILE"
_MAX_SECRET_FILE = 64 * 1024
_PLACEHOLDER = re.compile(
    r"^(?:<.*>|\$\{.*\}|.*change[-_ ]?me.*|placeholder|example|todo|xxx+|secret|password)$",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"^[a-z+]+://[^:/@]*:(?P<pw>[^@]*)@")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    """PostgreSQL."""

    url: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/tecsa")
    pool_max: int = Field(default=10, ge=1)


class S3Settings(_Section):
    """The object store holding the raw archive (the source of truth)."""

    endpoint_url: str | None = None
    """None for AWS; a URL for MinIO, SeaweedFS or the moto server in tests."""
    bucket: str = "tecsa-archive"
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None


class MqttSettings(_Section):
    """The broker the ingestor consumes from and acks through."""

    broker_url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: SecretStr | None = None
    share_group: str | None = "ingest"
    """MQTT v5 shared-subscription group; None on brokers without shared subscriptions."""


class KeySettings(_Section):
    """Where the cloud's private keys live (files, mode 0600)."""

    ingest_key: Path = Path("/run/secrets/tecsa-ingest.pem")
    """X25519: opens sealed batches."""
    signing_key: Path = Path("/run/secrets/tecsa-signing.pem")
    """Ed25519: signs acks, commands and model releases."""


class ApiSettings(_Section):
    """The HTTP API."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)


class CloudSettings(BaseSettings):
    """Everything the ingestor, the API and `tecsa-cloud` read; one instance per process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    database: DatabaseSettings = DatabaseSettings()
    s3: S3Settings = S3Settings()
    mqtt: MqttSettings = MqttSettings()
    keys: KeySettings = KeySettings()
    api: ApiSettings = ApiSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit values (and `_FILE` secrets), then the environment, then defaults."""
        del env_settings, dotenv_settings, file_secret_settings
        return (init_settings, _EnvWithoutFiles(settings_cls))


class _EnvWithoutFiles(EnvSettingsSource):
    """The environment, less the `<NAME>_FILE` variables that `_file_secrets` reads."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            k: v
            for k, v in super()._load_env_vars().items()
            if not k.endswith(_FILE_SUFFIX.lower())
        }


def load_cloud_settings(**overrides: object) -> CloudSettings:
    """Read the environment (and `_FILE` secrets); raise `ConfigError` naming what is wrong."""
    values = _file_secrets(dict(os.environ))
    values.update(overrides)
    try:
        settings = CloudSettings(**values)
    except ValidationError as exc:
        lines = [f"invalid cloud configuration ({ENV_PREFIX}* variables):"]
        for err in exc.errors(include_url=False, include_input=False):
            env_name = ENV_PREFIX + "__".join(str(p) for p in err["loc"]).upper()
            lines.append(f"  {env_name}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None
    _refuse_placeholders(settings)
    return settings


def _file_secrets(environ: dict[str, str]) -> dict[str, Any]:
    """Turn `TECSA_CLOUD_A__B_FILE=path` into {"a": {"b": <file content>}}."""
    out: dict[str, Any] = {}
    for name, path in environ.items():
        if not (name.startswith(ENV_PREFIX) and name.endswith(_FILE_SUFFIX)):
            continue
        plain = name[: -len(_FILE_SUFFIX)]
        if plain in environ:
            raise ConfigError(f"both {plain} and {name} are set; set only one")
        value = _read_secret(Path(path), name)
        parts = plain[len(ENV_PREFIX) :].lower().split("__")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _read_secret(path: Path, name: str) -> str:
    try:
        if path.stat().st_size > _MAX_SECRET_FILE:
            raise ConfigError(f"{name}: {path} is too large for a secret")
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except FileNotFoundError:
        raise ConfigError(f"{name}: secret file {path} does not exist") from None
    except PermissionError:
        raise ConfigError(f"{name}: secret file {path} cannot be read") from None
    except (IsADirectoryError, UnicodeDecodeError):
        raise ConfigError(f"{name}: {path} is not a text file") from None


def _refuse_placeholders(settings: CloudSettings) -> None:
    secrets = {
        "DATABASE__URL password": _url_password(settings.database.url.get_secret_value()),
        "S3__ACCESS_KEY_ID": settings.s3.access_key_id,
        "S3__SECRET_ACCESS_KEY": settings.s3.secret_access_key,
        "MQTT__PASSWORD": settings.mqtt.password,
    }
    for name, secret in secrets.items():
        value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        if value is not None and _PLACEHOLDER.match(value):
            raise ConfigError(
                f"{ENV_PREFIX}{name} holds a placeholder value; set the real secret "
                f"(or {ENV_PREFIX}{name.split()[0]}_FILE pointing at a file)"
            )


def _url_password(url: str) -> str | None:
    match = _URL_PASSWORD.match(url)
    return match.group("pw") if match else None
