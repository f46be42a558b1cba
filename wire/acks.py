"""Signed acks: the cloud's answer to a batch, the only thing that lets a hub mark rows delivered.

Layout (big-endian), the same framing as a sealed batch but with a clear body:

    magic  4 bytes  b"TSA" + version byte 0x01
    blen   2 bytes  length of the body
    body   blen     UTF-8 JSON object (`Ack`)
    sig    64 bytes Ed25519 by the cloud signing key over magic..body

A hub verifies the signature with the cloud signing key it was provisioned with, that the ack
names the hub itself, and that `payload_sha256` is the digest of the bytes it sent for that batch
(`Ack.answers`): a forged, misdirected or tampered-copy ack never makes it drop or stop
sending data.
"""

from __future__ import annotations

import hashlib
import struct
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Literal
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from wire.errors import DecodeError, IntegrityError
from wire.fields import HubId
from wire.framing import SignedFrame
from wire.keys import key_id

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

MAGIC = b"TSA"
VERSION = 1
_PREFIX = struct.Struct(">3sBH")
MAX_ACK = 4096  # an ack is a few hundred bytes; refuse anything larger before work
_FRAME = SignedFrame("ack", "an", MAGIC, VERSION, _PREFIX, MAX_ACK)


class AckStatus(StrEnum):
    """What the cloud did with a batch."""

    STORED = "stored"
    """Verified, archived and committed: the hub may mark its rows delivered."""
    DUPLICATE = "duplicate"
    """Already stored earlier (a republished batch): also delivered."""
    REJECTED = "rejected"
    """Quarantined in the cloud with `reason` (archived, never silently dropped); resending
    the same bytes cannot succeed, so the hub stops resending and keeps its rows for review."""


class AckCounts(BaseModel):
    """Items newly inserted and items already present, over all kinds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    inserted: int = Field(ge=0)
    duplicate: int = Field(ge=0)


class Ack(BaseModel):
    """The signed body of an ack."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    hub_id: HubId
    batch_id: UUID
    seq: int = Field(ge=0, lt=2**63)
    status: AckStatus
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None
    counts: AckCounts | None = None
    acked_at: AwareDatetime
    key: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
    """Key id of the cloud signing key."""
    payload_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    """SHA-256 of the exact payload the cloud judged. A hub honours an ack only for the bytes
    it sent: anyone able to publish a tampered copy of a hub's batch must not be able to make
    the cloud's "rejected" answer to that copy stop the hub from resending the genuine one."""

    def answers(self, payload: bytes) -> bool:
        """True when this ack is about exactly `payload` (the sealed bytes the hub sent)."""
        return hashlib.sha256(payload).hexdigest() == self.payload_sha256

    @property
    def delivered(self) -> bool:
        """True when the hub may mark the batch's rows delivered (stored or duplicate)."""
        return self.status in {AckStatus.STORED, AckStatus.DUPLICATE}


def sign_ack(ack: Ack, key: Ed25519PrivateKey) -> bytes:
    """Encode and sign `ack`; `ack.key` must be the id of `key`."""
    if ack.key != key_id(key):
        raise ValueError("ack.key must be the key id of the signing key")
    body = ack.model_dump_json(exclude_none=True).encode()
    signed = _FRAME.pack(body)
    return signed + key.sign(signed)


def verify_ack(data: bytes, *, cloud_key: Ed25519PublicKey, hub_id: str) -> Ack:
    """Verify and decode an ack addressed to `hub_id`; raise a `WireError` otherwise."""
    signed, signature, _ = _FRAME.split(data)
    try:
        cloud_key.verify(signature, signed)
    except InvalidSignature:
        raise IntegrityError("ack signature does not verify with the cloud signing key") from None
    try:
        ack = Ack.model_validate_json(signed[_PREFIX.size :])
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        raise DecodeError(f"invalid ack: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    if ack.key != key_id(cloud_key):
        raise IntegrityError("ack names a different signing key than the one that signed it")
    if ack.hub_id != hub_id:
        raise IntegrityError(f"ack is addressed to hub {ack.hub_id}, not {hub_id}")
    return ack
