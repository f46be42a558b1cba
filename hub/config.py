"""Hub configuration: a TOML file overlaid by `TECSA_HUB_...` environment variables.

Loaded once by the composition root (`load_hub_settings`); each component receives its own
sub-model. Nested keys map to environment variables with `__`, for example `[uplink] broker_url`
is `TECSA_HUB_UPLINK__BROKER_URL`. See docs/configuration.md.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hub.discovery.addresses import check_entry
from hub.errors import ConfigError
from wire.errors import InvalidTopic
from wire.topics import validate_hub_id

ENV_PREFIX = "TECSA_HUB_"
DEFAULT_CONFIG = Path("/etc/tecsa-hub/hub.toml")
_PLACEHOLDER = re.compile(
    r"^(?:<.*>|\$\{.*\}|.*change[-_ ]?me.*|placeholder|example|todo|xxx+|secret|password)$",
    re.IGNORECASE,
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


IDENTITY_KEY_FILE = "identity.ed25519.pem"
EXCHANGE_KEY_FILE = "exchange.x25519.pem"


class IdentitySettings(_Section):
    """Who this hub is and where its keys live (generated on the hub, never leaving it)."""

    hub_id: str
    key_dir: Path = Path("/var/lib/tecsa-hub/keys")
    cloud_ingest_key: Path = Path("/etc/tecsa-hub/cloud-ingest.pub.pem")
    """The cloud's X25519 public key that batches are sealed to."""
    cloud_signing_key: Path = Path("/etc/tecsa-hub/cloud-signing.pub.pem")
    """The cloud's Ed25519 public key that verifies acks and commands."""

    @field_validator("hub_id")
    @classmethod
    def _valid_hub_id(cls, value: str) -> str:
        if _PLACEHOLDER.match(value):
            raise ValueError(f"{value!r} is a placeholder; set the hub id given at enrolment")
        try:
            return validate_hub_id(value)
        except InvalidTopic as exc:
            raise ValueError(str(exc)) from None


class BufferSettings(_Section):
    """The SQLite buffer."""

    path: Path = Path("/var/lib/tecsa-hub/buffer.sqlite3")
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    max_unsent_mb: int = Field(default=2048, ge=1)
    retention_days: int = Field(default=30, ge=1)


class UplinkSettings(_Section):
    """MQTT link to the cloud."""

    enabled: bool = True
    broker_url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: SecretStr | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    batch_max_items: int = Field(default=500, ge=1, le=20_000)
    batch_max_bytes: int = Field(default=256 * 1024, ge=1024)
    batch_max_age_s: float = Field(default=30.0, gt=0)
    ack_timeout_s: float = Field(default=60.0, gt=0)

    @field_validator("broker_url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not re.match(r"^mqtts?://[^/\s]+$", value):
            raise ValueError("use mqtt://host:port or mqtts://host:port")
        return value


class BleSettings(_Section):
    """Bluetooth LE central."""

    enabled: bool = True
    profiles_dir: Path | None = None
    """Where device profiles live; None uses the ones shipped with the hub."""
    max_connections: int = Field(default=4, ge=1, le=20)
    device_timezone: str = "UTC"
    """IANA zone the devices' clocks show (the hub sets them to it), e.g. Africa/Nairobi."""
    reconnect_max_s: float = Field(default=300.0, gt=0)
    """Longest wait between attempts to reach a device that keeps failing."""
    idle_disconnect_s: float = Field(default=20.0, gt=0)
    """A device silent this long is let go when other devices wait for a connection slot."""
    share_after_s: float = Field(default=60.0, gt=0)
    """A device connected this long is let go, even if busy, when other devices wait for a slot
    (a device that measures without pause must not keep the others from ever being read)."""

    @field_validator("device_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name like Africa/Nairobi"
            ) from None
        return value


class ApiSettings(_Section):
    """The phones' local API (HTTPS with the hub's own certificate, which phones pin)."""

    enabled: bool = True
    host: str = "0.0.0.0"  # noqa: S104 - phones on the health post's LAN must reach it
    port: int = Field(default=8443, ge=1, le=65535)


class DiscoverySettings(_Section):
    """Zeroconf advertisement and browsing."""

    interfaces: tuple[str, ...] = ("127.0.0.1",)
    """IPv4 addresses or interface names (`wlan0`) to advertise on; a name follows the address
    the interface has now (a new DHCP lease is re-announced). Tests and the demo: 127.0.0.1."""
    recheck_s: float = Field(default=10.0, gt=0, le=3600)
    """How often interface names are resolved again to see whether the hub's address changed."""

    @field_validator("interfaces")
    @classmethod
    def _entries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one address or interface to advertise on")
        return tuple(check_entry(entry) for entry in value)


class ModelsSettings(_Section):
    """Signed triage models (hub/models): installed releases, the active and previous one."""

    dir: Path = Path("/var/lib/tecsa-hub/models")


class TriageSettings(_Section):
    """Triage on the hub (hub/inference/engine.py, docs/triage.md)."""

    enabled: bool = True
    window_minutes: int = Field(default=60, ge=1, le=24 * 60)
    """Vitals measured this long before a new reading count in its triage."""
    interval_s: float = Field(default=2.0, gt=0, le=3600)
    """How often the engine looks for new readings."""
    batch_size: int = Field(default=500, ge=1, le=20_000)
    """Readings scored per pass, in one model invocation."""
    rescore_s: float = Field(default=300.0, ge=0, le=3600)
    """A patient whose new readings change no NEWS2 subscore (none at 3, last band not high, no
    new record, same model) is rescored at most this often; 0 scores every reading at once."""


class HubSettings(BaseSettings):
    """Everything the hub daemon and `tecsa-hub` read; one instance per process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    identity: IdentitySettings
    buffer: BufferSettings = BufferSettings()
    uplink: UplinkSettings = UplinkSettings()
    ble: BleSettings = BleSettings()
    api: ApiSettings = ApiSettings()
    discovery: DiscoverySettings = DiscoverySettings()
    models: ModelsSettings = ModelsSettings()
    triage: TriageSettings = TriageSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment variables override the TOML file (passed as init values)."""
        del settings_cls, dotenv_settings, file_secret_settings
        return (env_settings, init_settings)


def load_hub_settings(path: Path | None = None) -> HubSettings:
    """Load the TOML file at `path` (or the default path, if it exists) under the environment.

    Raises `ConfigError` naming every bad or missing setting and how to set it.
    """
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    data = _read_toml(path) if path is not None else {}
    source = str(path) if path is not None else "no config file"
    try:
        settings = HubSettings(**data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source)) from None
    _refuse_placeholder_secrets(settings)
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except PermissionError:
        raise ConfigError(f"config file {path} cannot be read: permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _explain(exc: ValidationError, source: str) -> str:
    lines = [f"invalid hub configuration (from {source} and {ENV_PREFIX}* variables):"]
    for err in exc.errors(include_url=False, include_input=False):
        for loc in _required_leaves(err["loc"]) if err["type"] == "missing" else [err["loc"]]:
            dotted = ".".join(str(p) for p in loc)
            env_name = ENV_PREFIX + "__".join(str(p) for p in loc).upper()
            msg = "is required" if err["type"] == "missing" else err["msg"]
            lines.append(f"  {dotted}: {msg} (TOML key {dotted}, or {env_name})")
    return "\n".join(lines)


def _required_leaves(loc: tuple[int | str, ...]) -> list[tuple[int | str, ...]]:
    """A missing section is reported as the settings inside it that have no default."""
    model: type[BaseModel] = HubSettings
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return [loc]
        model = annotation
    return [(*loc, name) for name, f in model.model_fields.items() if f.is_required()] or [loc]


def _refuse_placeholder_secrets(settings: HubSettings) -> None:
    password = settings.uplink.password
    if password is not None and _PLACEHOLDER.match(password.get_secret_value()):
        raise ConfigError(
            "uplink.password holds a placeholder; set the broker password issued for this hub "
            f"(TOML key uplink.password, or {ENV_PREFIX}UPLINK__PASSWORD)"
        )
