"""Envelope v1: a header in clear, a sealed body, a hub signature over both. See docs/wire.md.

Layout (all integers big-endian):

    magic     4 bytes   b"TSB" + version byte 0x01
    hlen      2 bytes   length of the header
    header    hlen      UTF-8 JSON object (`Header`)
    clen      4 bytes   length of the ciphertext
    cipher    clen      AES-256-GCM(content key, nonce, compressed body, aad = magic..header)
    signature 64 bytes  Ed25519 by the hub identity key over magic..cipher

Content key = HKDF-SHA256(ikm = X25519(ephemeral, cloud ingest key), salt = epk || cloud public,
info = b"tecsa/v1/batch", 32 bytes). `open_sealed` checks sizes, then the signature, and only then
parses, decrypts and decompresses, so no unauthenticated byte reaches a parser beyond the framing.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Literal

import zstandard
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from wire.errors import DecodeError, IntegrityError, TooLarge, UnsupportedVersion
from wire.fields import HubId, Uuid7
from wire.items import Body
from wire.keys import key_id, raw_public

if TYPE_CHECKING:
    from collections.abc import Mapping
    from uuid import UUID

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

MAGIC = b"TSB"
VERSION = 1
_PREFIX = struct.Struct(">3sBH")  # magic, version, header length
_CLEN = struct.Struct(">I")
SIGNATURE_LEN = 64  # Ed25519, RFC 8032 section 5.1.6
TAG_LEN = 16  # AES-GCM tag, NIST SP 800-38D
NONCE_LEN = 12  # AES-GCM 96-bit IV, NIST SP 800-38D section 8.2
X25519_LEN = 32  # RFC 7748 section 5
HKDF_INFO = b"tecsa/v1/batch"
MIN_SEALED = _PREFIX.size + 2 + _CLEN.size + TAG_LEN + SIGNATURE_LEN  # header "{}" at the least
ZSTD_LEVEL = 3


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps checked before any work; the ingestor and the hub pass their configured values."""

    max_sealed: int = 8 * 1024 * 1024
    max_header: int = 4096
    max_body: int = 32 * 1024 * 1024
    max_items: int = 20_000


DEFAULT_LIMITS = Limits()


class Priority(StrEnum):
    """Which batches the uplink sends first: alerts, then routine data, then backfill."""

    ALERT = "alert"
    ROUTINE = "routine"
    BULK = "bulk"


class Compression(StrEnum):
    """How the body is compressed before encryption."""

    ZSTD = "zstd"
    NONE = "none"


KeyId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
B64 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$", max_length=64)]


class Counts(BaseModel):
    """How many items of each kind the body holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    readings: int = Field(ge=0)
    medical_records: int = Field(ge=0)
    triage_results: int = Field(ge=0)
    audit_events: int = Field(ge=0)

    def total(self) -> int:
        """All items."""
        return self.readings + self.medical_records + self.triage_results + self.audit_events


class Header(BaseModel):
    """The clear, signed part of an envelope: routing and accounting, never health data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1]
    hub_id: HubId
    batch_id: Uuid7
    seq: int = Field(ge=0, lt=2**63)
    created_at: AwareDatetime
    priority: Priority
    counts: Counts
    hub_key: KeyId
    cloud_key: KeyId
    epk: B64
    nonce: B64
    compression: Compression
    body_len: int = Field(ge=0)


@dataclass(frozen=True, slots=True)
class OpenedBatch:
    """A verified, decrypted and validated batch."""

    header: Header
    body: Body


def seal(
    body: Body,
    *,
    hub_id: str,
    batch_id: UUID,
    seq: int,
    now: AwareDatetime,
    priority: Priority,
    hub_key: Ed25519PrivateKey,
    cloud_key: X25519PublicKey,
    ephemeral_key: X25519PrivateKey,
    nonce: bytes,
    compression: Compression = Compression.ZSTD,
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """Seal `body` for the cloud: compress, encrypt to `cloud_key`, sign with `hub_key`.

    `ephemeral_key` and `nonce` must be fresh random values for every batch; they are parameters
    so that known-answer vectors can fix them.
    """
    if len(nonce) != NONCE_LEN:
        raise ValueError(f"nonce must be {NONCE_LEN} bytes")
    if body.total() > limits.max_items:
        raise TooLarge("batch has too many items", size=body.total(), limit=limits.max_items)
    plain = body.model_dump_json().encode()
    if len(plain) > limits.max_body:
        raise TooLarge("batch body is too large", size=len(plain), limit=limits.max_body)
    packed = _compress(plain, compression)
    header = Header(
        v=VERSION,
        hub_id=hub_id,
        batch_id=batch_id,
        seq=seq,
        created_at=now,
        priority=priority,
        counts=Counts(**body.counts()),
        hub_key=key_id(hub_key),
        cloud_key=key_id(cloud_key),
        epk=_b64(raw_public(ephemeral_key)),
        nonce=_b64(nonce),
        compression=compression,
        body_len=len(plain),
    )
    header_bytes = header.model_dump_json().encode()
    if len(header_bytes) > limits.max_header:
        raise TooLarge("header is too large", size=len(header_bytes), limit=limits.max_header)
    prefix = _PREFIX.pack(MAGIC, VERSION, len(header_bytes)) + header_bytes
    content_key = _content_key(
        ephemeral_key.exchange(cloud_key), raw_public(ephemeral_key), cloud_key
    )
    cipher = AESGCM(content_key).encrypt(nonce, packed, prefix)
    signed = prefix + _CLEN.pack(len(cipher)) + cipher
    sealed = signed + hub_key.sign(signed)
    if len(sealed) > limits.max_sealed:
        raise TooLarge("sealed batch is too large", size=len(sealed), limit=limits.max_sealed)
    return sealed


def peek_header(data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Header:
    """Parse the header without verifying it: for routing (which hub, which batch) only.

    Nothing in the result is authenticated until `open_sealed` has verified the signature.
    """
    header_bytes, _ = _frame(data, limits)
    return _parse_header(header_bytes, limits)


def open_sealed(
    data: bytes,
    *,
    hub_key: Ed25519PublicKey,
    cloud_keys: X25519PrivateKey | Mapping[str, X25519PrivateKey],
    limits: Limits = DEFAULT_LIMITS,
) -> OpenedBatch:
    """Verify, decrypt, decompress and validate a sealed batch; raise a `WireError` otherwise.

    `hub_key` is the registered identity key of the hub the header names; `cloud_keys` is the
    ingest key, or the keys by key id while keys rotate.
    """
    _check_prefix(data, limits)
    signed, signature = data[:-SIGNATURE_LEN], data[-SIGNATURE_LEN:]
    try:
        hub_key.verify(signature, signed)
    except InvalidSignature:
        raise IntegrityError("signature does not verify with the hub's registered key") from None
    header_bytes, cipher = _frame(data, limits)
    header = _parse_header(header_bytes, limits)
    if header.hub_key != key_id(hub_key):
        raise IntegrityError("header names a different hub key than the one that signed it")
    cloud_key = _pick_cloud_key(cloud_keys, header.cloud_key)
    epk = X25519PublicKey.from_public_bytes(_unb64(header.epk, X25519_LEN, "epk"))
    nonce = _unb64(header.nonce, NONCE_LEN, "nonce")
    try:
        shared = cloud_key.exchange(epk)
    except ValueError:  # an all-zero shared secret: a low-order point, RFC 7748 section 6.1
        raise IntegrityError("ephemeral key is a low-order point") from None
    content_key = _content_key(shared, raw_public(epk), cloud_key.public_key())
    prefix_len = _PREFIX.size + len(header_bytes)
    try:
        packed = AESGCM(content_key).decrypt(nonce, cipher, data[:prefix_len])
    except InvalidTag:
        raise IntegrityError("ciphertext does not authenticate (wrong ingest key?)") from None
    plain = _decompress(packed, header.compression, header.body_len)
    try:
        body = Body.model_validate_json(plain)
    except ValidationError as exc:
        raise DecodeError(f"body does not match schema v1: {_first_error(exc)}") from None
    if body.counts() != header.counts.model_dump():
        raise DecodeError("header counts do not match the body")
    return OpenedBatch(header=header, body=body)


def _check_prefix(data: bytes, limits: Limits) -> None:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("a sealed batch is bytes")
    if len(data) > limits.max_sealed:
        raise TooLarge("sealed batch is too large", size=len(data), limit=limits.max_sealed)
    if len(data) < MIN_SEALED:
        raise DecodeError(
            f"sealed batch is {len(data)} bytes, shorter than the minimum {MIN_SEALED}"
        )
    magic, version, _ = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise DecodeError("not a tecsa sealed batch (bad magic)")
    if version != VERSION:
        raise UnsupportedVersion(f"envelope version {version} is not supported", version=version)


def _frame(data: bytes, limits: Limits) -> tuple[bytes, bytes]:
    """Split into (header bytes, ciphertext) after checking every length; no parsing."""
    _check_prefix(data, limits)
    _, _, hlen = _PREFIX.unpack_from(data)
    if hlen > limits.max_header:
        raise TooLarge("header is too large", size=hlen, limit=limits.max_header)
    pos = _PREFIX.size + hlen
    if pos + _CLEN.size > len(data):
        raise DecodeError("truncated: header length runs past the end")
    (clen,) = _CLEN.unpack_from(data, pos)
    pos += _CLEN.size
    if clen < TAG_LEN:
        raise DecodeError("ciphertext shorter than its tag")
    if pos + clen + SIGNATURE_LEN != len(data):
        raise DecodeError(
            f"length mismatch: framing says {pos + clen + SIGNATURE_LEN} bytes, got {len(data)}"
        )
    return bytes(data[_PREFIX.size : _PREFIX.size + hlen]), bytes(data[pos : pos + clen])


def _parse_header(header_bytes: bytes, limits: Limits) -> Header:
    try:
        header = Header.model_validate_json(header_bytes)
    except ValidationError as exc:
        raise DecodeError(f"invalid header: {_first_error(exc)}") from None
    if header.body_len > limits.max_body:
        raise TooLarge("body would be too large", size=header.body_len, limit=limits.max_body)
    if header.counts.total() > limits.max_items:
        raise TooLarge(
            "batch has too many items", size=header.counts.total(), limit=limits.max_items
        )
    return header


def _pick_cloud_key(
    keys: X25519PrivateKey | Mapping[str, X25519PrivateKey], wanted: str
) -> X25519PrivateKey:
    if isinstance(keys, X25519PrivateKey):
        if key_id(keys) != wanted:
            raise IntegrityError(f"batch is sealed to ingest key {wanted}, which is not ours")
        return keys
    try:
        return keys[wanted]
    except KeyError:
        raise IntegrityError(f"batch is sealed to ingest key {wanted}, which is not ours") from None


def _content_key(shared: bytes, epk: bytes, recipient: X25519PublicKey) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=epk + raw_public(recipient),
        info=HKDF_INFO,
    ).derive(shared)


def _compress(plain: bytes, compression: Compression) -> bytes:
    if compression is Compression.NONE:
        return plain
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=False).compress(plain)


def _decompress(packed: bytes, compression: Compression, expected: int) -> bytes:
    """Decompress to exactly `expected` bytes, never holding more than `expected` + 64 KiB."""
    if compression is Compression.NONE:
        out = packed
    else:
        chunk = 64 * 1024
        parts: list[bytes] = []
        size = 0
        try:
            with zstandard.ZstdDecompressor().stream_reader(packed) as reader:
                while size <= expected:
                    part = reader.read(min(chunk, expected + 1 - size))
                    if not part:
                        break
                    parts.append(part)
                    size += len(part)
        except zstandard.ZstdError as exc:
            raise DecodeError(f"body does not decompress: {exc}") from None
        if size > expected:
            raise TooLarge("body expands past its declared length", size=size, limit=expected)
        out = b"".join(parts)
    if len(out) != expected:
        raise DecodeError(f"body is {len(out)} bytes, header says {expected}")
    return out


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str, length: int, name: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise DecodeError(f"{name} is not base64url") from None
    if len(raw) != length:
        raise DecodeError(f"{name} must be {length} bytes, got {len(raw)}")
    return raw


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "value"
    return f"{where}: {err['msg']}"
