"""Device profiles: which advertisement is which device family, and how to talk to it.

A profile is data (`firmware_profiles/*.yaml`), validated by `Profile`; adding a device family is
adding a file. `match_profile` is pure: it takes what an advertisement showed and returns the most
specific profile whose every declared criterion matches. Vendor profiles (`extends: <base>`) take
the base profile's keys and override what they name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from hub.ble.parsers import KNOWN_QUIRKS as PARSER_QUIRKS
from hub.ble.parsers import PARSERS, ParseError, normalize_uuid16
from hub.errors import ConfigError

KNOWN_QUIRKS = PARSER_QUIRKS
"""Parser quirks a profile may name; each is documented in hub/ble/parsers/quirks.py."""


def uuid16(value: str | int) -> str:
    """Normalise `2A35`, `0x2a35`, 0x2A35 or the full Base-UUID form to `2a35`; else ValueError."""
    try:
        return normalize_uuid16(value)
    except ParseError as exc:
        raise ValueError(f"{value!r} is not a 16-bit Bluetooth SIG UUID: {exc.reason}") from None


Uuid16 = Annotated[str, Field(description="16-bit SIG UUID, e.g. 2a35")]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Model):
    """What an advertisement must show; every criterion given must match."""

    service_uuids: tuple[Uuid16, ...] = ()
    """At least one of these services is advertised."""
    name_pattern: str | None = None
    """A regular expression searched in the advertised local name."""
    manufacturer_ids: tuple[int, ...] = ()
    """At least one of these Bluetooth SIG company ids is in the manufacturer data."""

    @field_validator("service_uuids", mode="before")
    @classmethod
    def _uuids(cls, value: Any) -> Any:  # noqa: ANN401 - raw YAML before validation
        return tuple(uuid16(v) for v in value) if isinstance(value, list | tuple) else value

    @field_validator("name_pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"name_pattern is not a valid regular expression: {exc}") from None
        return value

    @field_validator("manufacturer_ids")
    @classmethod
    def _company_ids(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 <= v <= 0xFFFF for v in value):  # noqa: PLR2004 - 16-bit company identifiers
            raise ValueError("manufacturer ids are 16-bit company identifiers")
        return value

    def specificity(self) -> int:
        """How specific the criteria are: a manufacturer or a name beats a service alone."""
        return (
            4 * bool(self.manufacturer_ids)
            + 2 * (self.name_pattern is not None)
            + bool(self.service_uuids)
        )


class Subscription(_Model):
    """A characteristic to enable notifications or indications on, before anything else."""

    characteristic: Uuid16
    mode: Literal["notify", "indicate"]
    role: Literal["measurement", "intermediate", "context", "control"] = "measurement"

    @field_validator("characteristic", mode="before")
    @classmethod
    def _uuid(cls, value: Any) -> Any:  # noqa: ANN401 - raw YAML before validation
        return uuid16(value) if isinstance(value, str | int) else value


class Clock(_Model):
    """How to set the device clock, and when."""

    method: Literal["current_time", "date_time", "none"] = "none"
    characteristic: Uuid16 | None = None
    write_first: bool = False
    """Write the time before subscribing (some cuffs only release readings once the time is set)."""
    threshold_s: float = Field(default=8.0, ge=0)
    """Write only when the device is off by more than this; always keep the measured offset."""

    @field_validator("characteristic", mode="before")
    @classmethod
    def _uuid(cls, value: Any) -> Any:  # noqa: ANN401 - raw YAML before validation
        return uuid16(value) if isinstance(value, str | int) else value


class Racp(_Model):
    """Stored-record download through the Record Access Control Point."""

    characteristic: Uuid16 = "2a52"
    measurement: Uuid16
    context: Uuid16 | None = None
    timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("characteristic", "measurement", "context", mode="before")
    @classmethod
    def _uuid(cls, value: Any) -> Any:  # noqa: ANN401 - raw YAML before validation
        return uuid16(value) if isinstance(value, str | int) else value


class Profile(_Model):
    """One device family, or a vendor variant of one."""

    name: Slug
    title: str
    family: Slug
    match: Match
    bonding: Literal["required", "optional", "none"] = "none"
    subscribe: tuple[Subscription, ...] = Field(min_length=1)
    read: tuple[Uuid16, ...] = ()
    clock: Clock = Clock()
    racp: Racp | None = None
    quirks: tuple[str, ...] = ()
    notes: str = ""

    @field_validator("read", mode="before")
    @classmethod
    def _uuids(cls, value: Any) -> Any:  # noqa: ANN401 - raw YAML before validation
        return tuple(uuid16(v) for v in value) if isinstance(value, list | tuple) else value

    @field_validator("subscribe")
    @classmethod
    def _parsable(cls, value: tuple[Subscription, ...]) -> tuple[Subscription, ...]:
        missing = [s.characteristic for s in value if s.characteristic not in PARSERS]
        if missing:
            raise ValueError(f"no parser for subscribed characteristics {missing}")
        return value

    @field_validator("quirks")
    @classmethod
    def _known_quirks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(value) - KNOWN_QUIRKS
        if unknown:
            raise ValueError(f"unknown quirks {sorted(unknown)}; known: {sorted(KNOWN_QUIRKS)}")
        return value


@dataclass(frozen=True, slots=True)
class Advertisement:
    """What a scan showed of a device: the inputs of matching."""

    name: str | None
    service_uuids: tuple[str, ...]
    manufacturer_ids: tuple[int, ...]


def match_profile(adv: Advertisement, profiles: tuple[Profile, ...]) -> Profile | None:
    """The most specific profile whose every criterion matches `adv`, or None."""
    services = {uuid16(u) for u in adv.service_uuids if _is_sig_uuid(u)}
    best: Profile | None = None
    for profile in profiles:
        m = profile.match
        if m.service_uuids and not services.intersection(m.service_uuids):
            continue
        if m.name_pattern is not None and not (adv.name and re.search(m.name_pattern, adv.name)):
            continue
        if m.manufacturer_ids and not set(adv.manufacturer_ids).intersection(m.manufacturer_ids):
            continue
        if best is None or m.specificity() > best.match.specificity():
            best = profile
    return best


def load_profiles(directory: Path) -> tuple[Profile, ...]:
    """Load and validate every `*.yaml` in `directory`; `ConfigError` names the file and field."""
    raw: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"profile {path.name}: cannot read it: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise ConfigError(f"profile {path.name}: must be a mapping with a 'name'")
        if data["name"] in raw:
            raise ConfigError(f"profile {path.name}: name {data['name']!r} is used twice")
        if f"{data['name']}.yaml" != path.name:
            raise ConfigError(f"profile {path.name}: its name must be the file name without .yaml")
        raw[data["name"]] = data
    if not raw:
        raise ConfigError(f"no device profiles in {directory}")
    profiles = tuple(_build(name, raw) for name in raw)
    _refuse_ambiguity(profiles)
    return profiles


def default_profiles_dir() -> Path:
    """The profiles shipped with the hub (the repository's firmware_profiles/)."""
    return Path(__file__).resolve().parents[2] / "firmware_profiles"


def _build(name: str, raw: dict[str, dict[str, Any]]) -> Profile:
    data = dict(raw[name])
    base_name = data.pop("extends", None)
    if base_name is not None:
        if base_name not in raw or "extends" in raw[base_name]:
            raise ConfigError(
                f"profile {name}.yaml: extends {base_name!r}, which is not a base profile"
            )
        data = {**raw[base_name], **data}
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)
        )
        raise ConfigError(f"profile {name}.yaml: {problems}") from None


def _refuse_ambiguity(profiles: tuple[Profile, ...]) -> None:
    seen: dict[tuple[Any, ...], str] = {}
    for p in profiles:
        key = (p.match.service_uuids, p.match.name_pattern, p.match.manufacturer_ids)
        if key in seen:
            raise ConfigError(f"profiles {seen[key]} and {p.name} match exactly the same devices")
        seen[key] = p.name


def _is_sig_uuid(value: str) -> bool:
    try:
        uuid16(value)
    except ValueError:
        return False
    return True
