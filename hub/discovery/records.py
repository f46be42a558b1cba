"""The DNS-SD records of hubs and phones, pure: build ours, parse theirs (untrusted input).

A hub advertises `_tecsa-hub._tcp.local.` with TXT `hub_id`, `api` (the API version) and `tls`
(the SHA-256 fingerprint of its TLS certificate, which phones pin). A phone advertises
`_tecsa-agent._tcp.local.` with TXT `agent` (the agent id, informative only: phones are
authenticated by their tokens, never by what they advertise) and `app` (the app version).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wire.errors import InvalidTopic
from wire.topics import validate_hub_id

HUB_SERVICE = "_tecsa-hub._tcp.local."
AGENT_SERVICE = "_tecsa-agent._tcp.local."
API_VERSION = "1"
_MAX_VALUE = 200  # a TXT string is at most 255 bytes (RFC 6763 section 6.1); ours are short
_SAFE = re.compile(r"^[\x21-\x7e]{1,128}$")
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


class RecordError(ValueError):
    """A record from the network does not parse; it is ignored (and counted)."""


@dataclass(frozen=True, slots=True)
class HubRecord:
    """What a hub advertises."""

    hub_id: str
    port: int
    tls_fingerprint: str
    api: str = API_VERSION

    def instance(self) -> str:
        """The DNS-SD instance name."""
        return f"{self.hub_id}.{HUB_SERVICE}"

    def txt(self) -> dict[str, str]:
        """The TXT properties."""
        return {"hub_id": self.hub_id, "api": self.api, "tls": self.tls_fingerprint}


@dataclass(frozen=True, slots=True)
class PhoneRecord:
    """What a phone advertises (not trusted: informative only)."""

    name: str
    agent: str | None
    app: str | None


def parse_hub(name: str, port: int | None, properties: dict[bytes, bytes | None]) -> HubRecord:
    """A hub's record from what a browser resolved; `RecordError` if it is not one of ours."""
    txt = _decode(properties)
    hub_id = txt.get("hub_id")
    fingerprint = txt.get("tls", "")
    if hub_id is None:
        raise RecordError(f"{name}: no hub_id")
    try:
        validate_hub_id(hub_id)
    except InvalidTopic as exc:
        raise RecordError(f"{name}: {exc}") from None
    if not _FINGERPRINT.match(fingerprint):
        raise RecordError(f"{name}: tls is not a SHA-256 fingerprint")
    if port is None or not 0 < port < 65536:  # noqa: PLR2004 - TCP port range
        raise RecordError(f"{name}: no valid port")
    return HubRecord(hub_id, port, fingerprint, txt.get("api", "?"))


def parse_phone(name: str, properties: dict[bytes, bytes | None]) -> PhoneRecord:
    """A phone's record; values that are not safe printable strings are dropped, never trusted."""
    if not name.endswith("." + AGENT_SERVICE) or len(name) > 255:  # noqa: PLR2004 - DNS name
        raise RecordError(f"{name!r} is not a {AGENT_SERVICE} instance")
    txt = _decode(properties)
    agent = txt.get("agent")
    app = txt.get("app")
    return PhoneRecord(
        name=name,
        agent=agent if agent is not None and _SAFE.match(agent) else None,
        app=app if app is not None and _SAFE.match(app) else None,
    )


def _decode(properties: dict[bytes, bytes | None]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in properties.items():
        if value is None or len(key) > _MAX_VALUE or len(value) > _MAX_VALUE:
            continue
        try:
            out[key.decode("ascii")] = value.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return out
