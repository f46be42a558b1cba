"""Signed commands: what the cloud tells one hub on `down/cmd` (revocations, plans, model releases).

Layout (big-endian), the framing of an ack (`wire.acks`) with a 4-byte length and its own magic:

    magic  4 bytes  b"TSC" + version byte 0x01
    blen   4 bytes  length of the body
    body   blen     UTF-8 JSON object (`Command`)
    sig    64 bytes Ed25519 by the cloud signing key over magic..body

A hub verifies the signature with the cloud signing key it was provisioned with, that the
command names the hub itself (a command for "all" hubs is one command per hub), and that it has
not expired. `data` is checked against the schema of `kind` before anything is returned, so a
caller only ever sees a command it can act on. Commands carry full snapshots with a version: a
hub keeps the newest and ignores older ones, and remembers the ids it applied until they expire.
Pure: `verify_command` takes `now`; `new_command` takes `now` and the random bytes of the id.
"""

from __future__ import annotations

import base64
import binascii
import struct
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

from cryptography.exceptions import InvalidSignature
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from wire.errors import (
    DecodeError,
    Expired,
    IntegrityError,
    Misdirected,
    TooLarge,
)
from wire.fields import HubId, Uuid7
from wire.framing import SIGNATURE_LEN, SignedFrame
from wire.ids import uuid7
from wire.items import Ident
from wire.plans import PlanSnapshot

if TYPE_CHECKING:
    from datetime import datetime

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

MAGIC = b"TSC"
VERSION = 1
_PREFIX = struct.Struct(">3sBI")
MAX_COMMAND = 1024 * 1024
"""Bytes of a whole command, checked before any work (a plans snapshot fits easily)."""
_FRAME = SignedFrame("command", "a", MAGIC, VERSION, _PREFIX, MAX_COMMAND)
MAX_LIFETIME = timedelta(days=31)
"""expires_at - issued_at; bounds how long a hub must remember the ids it applied."""
CLOCK_SKEW = timedelta(minutes=5)
"""A hub's clock may drift: a command is refused only this long after its expiry."""
MAX_REVOKED = 100_000

M = TypeVar("M", bound=BaseModel)


class CommandKind(StrEnum):
    """What a command carries in `data`."""

    REVOCATIONS = "revocations"
    """`RevocationList`: the full list of revoked, unexpired agent token ids."""
    PLANS = "plans"
    """`wire.plans.PlanSnapshot`: the full set of the hub's plans."""
    MODEL_RELEASE = "model_release"
    """`ModelReleaseData`: a signed model release (verified by its own handler)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class RevokedToken(_Frozen):
    """One revoked token: its id (`jti`) and when it expires (after which no list needs it)."""

    jti: Ident
    expires_at: AwareDatetime


class RevocationList(_Frozen):
    """Every revoked, unexpired token at `version`; a newer version replaces it whole."""

    version: int = Field(ge=0, lt=2**63, strict=True)
    revoked: tuple[RevokedToken, ...] = Field(default=(), max_length=MAX_REVOKED)


class ModelReleaseData(_Frozen):
    """A model release, base64 of its own signed bytes; its handler verifies those."""

    release: Annotated[str, StringConstraints(min_length=1, pattern=r"^[A-Za-z0-9+/]+={0,2}$")]

    @field_validator("release")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"not valid base64: {exc}") from None
        return value

    def release_bytes(self) -> bytes:
        """The decoded release."""
        try:
            return base64.b64decode(self.release, validate=True)
        except binascii.Error as exc:
            raise DecodeError(f"model release is not valid base64: {exc}") from None


DATA_MODELS: dict[CommandKind, type[BaseModel]] = {
    CommandKind.REVOCATIONS: RevocationList,
    CommandKind.PLANS: PlanSnapshot,
    CommandKind.MODEL_RELEASE: ModelReleaseData,
}


class Command(_Frozen):
    """The signed body of a command to one hub."""

    v: Literal[1] = 1
    id: Uuid7
    """UUIDv7, unique per command: a hub applies an id at most once."""
    hub_id: HubId
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    kind: CommandKind
    data: dict[str, JsonValue]

    @model_validator(mode="after")
    def _consistent(self) -> Command:
        if not timedelta(0) < self.expires_at - self.issued_at <= MAX_LIFETIME:
            raise ValueError(
                f"expires_at must be after issued_at, by at most {MAX_LIFETIME.days} days"
            )
        DATA_MODELS[self.kind].model_validate(self.data)  # refuse bad data here, not later
        return self

    @property
    def version(self) -> int | None:
        """The snapshot version of `data` (revocations, plans), None for other kinds."""
        value = self.data.get("version")
        return value if isinstance(value, int) else None

    def revocations(self) -> RevocationList:
        """`data` of a `revocations` command."""
        return _data(self, CommandKind.REVOCATIONS, RevocationList)

    def plans(self) -> PlanSnapshot:
        """`data` of a `plans` command."""
        return _data(self, CommandKind.PLANS, PlanSnapshot)

    def model_release(self) -> ModelReleaseData:
        """`data` of a `model_release` command."""
        return _data(self, CommandKind.MODEL_RELEASE, ModelReleaseData)


def new_command(
    kind: CommandKind,
    data: BaseModel,
    *,
    hub_id: str,
    now: datetime,
    lifetime: timedelta,
    rand: bytes,
) -> Command:
    """A command for `hub_id` issued at `now`; `rand` is the 10 random bytes of its UUIDv7 id."""
    if not isinstance(data, DATA_MODELS[kind]):
        raise TypeError(f"{kind} data must be a {DATA_MODELS[kind].__name__}")
    return Command(
        id=uuid7(now, rand),
        hub_id=hub_id,
        issued_at=now,
        expires_at=now + lifetime,
        kind=kind,
        data=data.model_dump(mode="json"),
    )


def sign_command(command: Command, key: Ed25519PrivateKey) -> bytes:
    """Encode and sign `command` with the cloud signing key."""
    body = command.model_dump_json().encode()
    signed = _FRAME.pack(body)
    if len(signed) + SIGNATURE_LEN > MAX_COMMAND:
        raise TooLarge("command is too large", size=len(signed) + SIGNATURE_LEN, limit=MAX_COMMAND)
    return signed + key.sign(signed)


def verify_command(
    data: bytes, *, cloud_key: Ed25519PublicKey, hub_id: str, now: datetime
) -> Command:
    """Verify and decode a command for `hub_id` at `now`; raise a `WireError` otherwise.

    `TooLarge` (checked first, before any work), `DecodeError`/`UnsupportedVersion` (framing),
    `IntegrityError` (signature), `DecodeError` (body or data schema), `Misdirected` (another
    hub's), `Expired` (past `expires_at` plus the clock-skew allowance).
    """
    signed, signature, _ = _FRAME.split(data)
    try:
        cloud_key.verify(signature, signed)
    except InvalidSignature:
        raise IntegrityError(
            "command signature does not verify with the cloud signing key"
        ) from None
    try:
        command = Command.model_validate_json(signed[_PREFIX.size :])
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(map(str, err["loc"])) or "body"
        raise DecodeError(f"invalid command: {where}: {err['msg']}") from None
    if command.hub_id != hub_id:
        raise Misdirected(
            f"command is addressed to hub {command.hub_id}, not {hub_id}",
            addressed_to=command.hub_id,
            expected=hub_id,
        )
    if now > command.expires_at + CLOCK_SKEW:
        raise Expired(f"command {command.id} expired at {command.expires_at.isoformat()}")
    return command


def _data(command: Command, kind: CommandKind, model: type[M]) -> M:
    if command.kind is not kind:
        raise ValueError(f"command {command.id} is {command.kind}, not {kind}")
    return model.model_validate(command.data)
