"""Agent tokens: EdDSA-signed JWTs (RFC 7519 / RFC 8037) issued by the cloud, verified offline.

A hub verifies a phone's token with the cloud signing key it was provisioned with, with no
network: signature, issuer, audience, time window (with a small clock-skew allowance, since a
hub's clock may drift), role, and a revocation list of token ids pushed to the hub when online.
Pure: `issue` and `verify` take the key, `now` and the token id explicitly.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature

from wire.errors import WireError
from wire.keys import key_id

if TYPE_CHECKING:
    from collections.abc import Collection

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

ISSUER = "tecsa-cloud"
AUDIENCE = "tecsa-hub"
MAX_TOKEN = 2048  # a token is ~400 bytes; refuse larger input before decoding
MAX_LIFETIME = timedelta(days=31)
CLOCK_SKEW = timedelta(minutes=5)
_HEADER = {"alg": "EdDSA", "typ": "JWT"}


class Role(StrEnum):
    """What a token lets its holder do on a hub."""

    AGENT = "agent"
    SUPERVISOR = "supervisor"
    TECHNICIAN = "technician"


class TokenError(WireError):
    """The token cannot be accepted; `reason` is safe to show (it holds no secret)."""

    status = 401


class TokenInvalid(TokenError):
    """Malformed, signed with another key, or not meant for a hub."""


class TokenExpired(TokenError):
    """Past its expiry (or not valid yet): the agent must sync with the cloud for a new one."""


class TokenRevoked(TokenError):
    """Revoked by the cloud (lost phone, agent left)."""


class RoleRefused(TokenError):
    """Valid, but the role may not do this."""

    status = 403


@dataclass(frozen=True, slots=True)
class Claims:
    """A verified token's claims."""

    agent_id: str
    role: Role
    token_id: str
    issued_at: datetime
    expires_at: datetime


def issue(
    key: Ed25519PrivateKey,
    *,
    agent_id: str,
    role: Role,
    now: datetime,
    lifetime: timedelta,
    token_id: str,
) -> str:
    """A compact JWS for `agent_id`, valid from `now` for `lifetime` (at most 31 days)."""
    if not 0 < len(agent_id) <= 128 or not agent_id.isprintable() or " " in agent_id:  # noqa: PLR2004 - wire.items.Ident
        raise ValueError("agent_id must be 1-128 printable characters without spaces")
    if not timedelta(0) < lifetime <= MAX_LIFETIME:
        raise ValueError(f"lifetime must be positive and at most {MAX_LIFETIME.days} days")
    header = _HEADER | {"kid": key_id(key)}
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": agent_id,
        "role": Role(role).value,
        "jti": token_id,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
    }
    signing_input = f"{_b64(_json(header))}.{_b64(_json(payload))}"
    return f"{signing_input}.{_b64(key.sign(signing_input.encode()))}"


def verify(
    token: str,
    *,
    key: Ed25519PublicKey,
    now: datetime,
    revoked: Collection[str] = (),
    roles: Collection[Role] = tuple(Role),
) -> Claims:
    """Verify `token` at `now`; raise a `TokenError` subclass naming the reason otherwise."""
    header, payload, signing_input, signature = _split(token)
    if header.get("alg") != "EdDSA" or header.get("kid") != key_id(key):
        raise TokenInvalid("token is not signed with this hub's cloud key (alg/kid)")
    try:
        key.verify(signature, signing_input)
    except InvalidSignature:
        raise TokenInvalid("token signature does not verify") from None
    claims = _claims(payload)
    if claims.issued_at - CLOCK_SKEW > now:
        raise TokenExpired("token is not valid yet (check the hub's clock)")
    if claims.expires_at + CLOCK_SKEW <= now:
        raise TokenExpired(f"token expired at {claims.expires_at.isoformat()}")
    if claims.token_id in revoked:
        raise TokenRevoked("token was revoked")
    if claims.role not in roles:
        allowed = ", ".join(sorted(r.value for r in roles))
        raise RoleRefused(f"role {claims.role.value} may not do this (needs {allowed})")
    return claims


def _split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    if not isinstance(token, str) or len(token) > MAX_TOKEN:
        raise TokenInvalid("token is not a string of at most 2048 characters")
    parts = token.split(".")
    if len(parts) != 3:  # noqa: PLR2004 - JWS compact serialization, RFC 7515 section 7.1
        raise TokenInvalid("token is not a compact JWS (three dot-separated parts)")
    try:
        header = json.loads(_unb64(parts[0]))
        payload = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except (ValueError, UnicodeDecodeError):
        raise TokenInvalid("token parts are not base64url JSON") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise TokenInvalid("token header and payload must be JSON objects")
    return header, payload, f"{parts[0]}.{parts[1]}".encode(), signature


def _claims(payload: dict[str, Any]) -> Claims:
    if payload.get("iss") != ISSUER or payload.get("aud") != AUDIENCE:
        raise TokenInvalid("token was not issued by the cloud for hubs (iss/aud)")
    sub, role, jti = payload.get("sub"), payload.get("role"), payload.get("jti")
    iat, exp = payload.get("iat"), payload.get("exp")
    if not (isinstance(sub, str) and isinstance(jti, str) and isinstance(role, str)):
        raise TokenInvalid("token lacks sub, jti or role")
    if not (isinstance(iat, int) and isinstance(exp, int)) or isinstance(iat | exp, bool):
        raise TokenInvalid("token lacks numeric iat and exp")
    try:
        parsed_role = Role(role)
        issued = datetime.fromtimestamp(iat, UTC)
        expires = datetime.fromtimestamp(exp, UTC)
    except (ValueError, OverflowError, OSError):
        raise TokenInvalid("token has an unknown role or impossible times") from None
    if expires - issued > MAX_LIFETIME:
        raise TokenInvalid("token lifetime exceeds the maximum")
    return Claims(sub, parsed_role, jti, issued, expires)


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(str(exc)) from None
