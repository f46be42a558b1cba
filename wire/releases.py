"""Signed model releases: a manifest and the int8 model it describes, signed by the cloud. Pure.

Layout (big-endian), the framing of wire/acks.py with two length-prefixed parts:

    magic  4 bytes  b"TSR" + version byte 0x01
    mlen   4 bytes  length of the manifest
    alen   4 bytes  length of the artifact
    body   mlen     the manifest: RFC 8785 canonical UTF-8 JSON (`ReleaseManifest`)
    art    alen     the int8 LiteRT model (.tflite) bytes
    sig    64 bytes Ed25519 by the cloud signing key over magic..art

A hub checks, in this order and before any other work: the size (`MAX_RELEASE`), the framing,
the signature with the cloud signing key it was provisioned with, the manifest, that the
manifest names that key, and that the artifact's SHA-256 and size are the manifest's. Only then
does it run the manifest's self-test vectors and activate the model (hub/models/).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

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
)

from wire.canonical import canonical
from wire.errors import DecodeError, IntegrityError, TooLarge
from wire.framing import SIGNATURE_LEN, SignedFrame
from wire.keys import key_id

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

MAGIC = b"TSR"
VERSION = 1
_PREFIX = struct.Struct(">3sBII")
MAX_RELEASE = 256 * 1024  # the int8 triage model is ~20 KB; refuse anything larger before work
MAX_MANIFEST = 64 * 1024
MAX_VECTORS = 256
VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$"
_Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class MalformedRelease(DecodeError):
    """The bytes are not a well-formed release (framing or manifest); resending will not help."""


_FRAME = SignedFrame(
    "release",
    "a",
    MAGIC,
    VERSION,
    _PREFIX,
    MAX_RELEASE,
    malformed=MalformedRelease,
    title="model release",
    mismatch_hint=" (truncated, unsigned or padded)",
    part_caps=(("release manifest", MAX_MANIFEST),),
)


class ReleaseSignatureError(IntegrityError):
    """The release is unsigned, or signed by another key than the cloud signing key."""


class ReleaseChecksumMismatch(IntegrityError):
    """The artifact is not the one the signed manifest describes (SHA-256 or size)."""


class SelfTestVector(BaseModel):
    """One input and what the model must answer for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    inputs: tuple[float, ...] = Field(min_length=1, max_length=1024)
    """The model's input features, in the order of the feature spec, before quantization."""
    probability: float = Field(ge=0.0, le=1.0)
    """Expected probability of deterioration (the model's output)."""
    band: str | None = None
    """Expected risk band, checked when the manifest gives `band_thresholds`."""

    @field_validator("inputs")
    @classmethod
    def _finite(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not all(math.isfinite(v) for v in value):
            raise ValueError("self-test inputs must be finite numbers")
        return value


class SelfTest(BaseModel):
    """Vectors a hub runs through a fresh interpreter before it activates a model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tolerance: float = Field(gt=0.0, le=0.5)
    """Largest accepted |predicted - expected| probability (int8 rounding, runtime versions)."""
    vectors: tuple[SelfTestVector, ...] = Field(min_length=1, max_length=MAX_VECTORS)


class ReleaseManifest(BaseModel):
    """The signed description of a model release."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    version: Annotated[str, StringConstraints(pattern=VERSION_PATTERN)]
    created_at: AwareDatetime
    key: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
    """Key id of the cloud signing key."""
    artifact_sha256: _Hex64
    artifact_size: int = Field(ge=1, le=MAX_RELEASE)
    metrics: dict[Annotated[str, StringConstraints(max_length=64)], float] = Field(
        default_factory=dict, max_length=64
    )
    training_data_digest: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    feature_spec: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    """Version of the feature spec the model's inputs follow (hub/inference must speak it)."""
    band_thresholds: dict[Annotated[str, StringConstraints(max_length=32)], float] | None = None
    """Lowest probability of each band, e.g. {"low": 0, "medium": 0.3, "high": 0.7}."""
    self_test: SelfTest
    model_manifest: dict[str, JsonValue] | None = None
    """The artifact's own manifest (normalisation, feature names...), carried and signed verbatim
    for the hub's runtime; self-test inputs are already normalised model inputs."""

    @field_validator("metrics", "band_thresholds")
    @classmethod
    def _finite_values(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and not all(math.isfinite(v) for v in value.values()):
            raise ValueError("values must be finite numbers")
        return value

    def band_of(self, probability: float) -> str | None:
        """The band whose threshold is the highest one at or below `probability`, if any."""
        if not self.band_thresholds:
            return None
        reached = [(t, name) for name, t in self.band_thresholds.items() if probability >= t]
        return max(reached)[1] if reached else None


@dataclass(frozen=True, slots=True)
class Release:
    """A verified release: its manifest, the model bytes, and the signed bytes as received."""

    manifest: ReleaseManifest
    artifact: bytes
    sealed: bytes

    @property
    def version(self) -> str:
        """The model version."""
        return self.manifest.version


def seal_release(manifest: ReleaseManifest, artifact: bytes, key: Ed25519PrivateKey) -> bytes:
    """Encode and sign a release; the manifest must describe `artifact` and name `key`."""
    if manifest.key != key_id(key):
        raise ValueError("manifest.key must be the key id of the signing key")
    if manifest.artifact_sha256 != hashlib.sha256(artifact).hexdigest():
        raise ValueError("manifest.artifact_sha256 is not the SHA-256 of the artifact")
    if manifest.artifact_size != len(artifact):
        raise ValueError("manifest.artifact_size is not the artifact's size")
    body = canonical(manifest.model_dump(mode="json", exclude_none=True))
    signed = _FRAME.pack(body, artifact)
    if len(signed) + SIGNATURE_LEN > MAX_RELEASE:
        raise TooLarge("release is too large", size=len(signed) + SIGNATURE_LEN, limit=MAX_RELEASE)
    return signed + key.sign(signed)


def open_release(data: bytes, *, cloud_key: Ed25519PublicKey) -> Release:
    """Verify and decode a release; raise a `WireError` subclass saying why it is refused."""
    signed, signature, (mlen, _) = _FRAME.split(data)
    try:
        cloud_key.verify(signature, signed)
    except InvalidSignature:
        raise ReleaseSignatureError(
            "release signature does not verify with the cloud signing key "
            "(unsigned, tampered, or signed by another key)"
        ) from None
    body = signed[_PREFIX.size : _PREFIX.size + mlen]
    artifact = signed[_PREFIX.size + mlen :]
    manifest = _manifest(body)
    if manifest.key != key_id(cloud_key):
        raise ReleaseSignatureError("release names a different key than the one that signed it")
    if manifest.artifact_size != len(artifact):
        raise ReleaseChecksumMismatch(
            f"artifact is {len(artifact)} bytes, the manifest says {manifest.artifact_size}"
        )
    if hashlib.sha256(artifact).hexdigest() != manifest.artifact_sha256:
        raise ReleaseChecksumMismatch("artifact SHA-256 does not match the signed manifest")
    return Release(manifest=manifest, artifact=artifact, sealed=bytes(data))


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key of model versions: numeric runs compare as numbers ("1.10" after "1.9")."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part)
        for part in re.findall(r"\d+|[^\d]+", version)
    )


def _manifest(body: bytes) -> ReleaseManifest:
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedRelease("release manifest is not UTF-8 JSON") from None
    try:
        return ReleaseManifest.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(map(str, err["loc"])) or "manifest"
        raise MalformedRelease(f"invalid release manifest: {where}: {err['msg']}") from None
