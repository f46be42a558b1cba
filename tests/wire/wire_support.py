"""Shared helpers for the wire tests: vectors, an independent sealer, hypothesis strategies."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zstandard
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import strategies as st

from wire.items import AuditEvent, Body, Component, MedicalRecord, Reading, RiskBand, TriageResult

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

VECTORS = Path(__file__).parent / "vectors"


def load_vectors() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(VECTORS.glob("*.json"))]


def raw(key: Any) -> bytes:
    pub = key.public_key() if hasattr(key, "public_key") else key
    return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def key_id(key: Any) -> str:
    return hashlib.sha256(raw(key)).hexdigest()[:16]


def seal_raw(
    header: dict[str, Any],
    body: bytes,
    *,
    hub: Ed25519PrivateKey,
    cloud_public: Any,
    eph: X25519PrivateKey,
    nonce: bytes,
    compress: bool = True,
    magic: bytes = b"TSB\x01",
    body_len: int | None = None,
) -> bytes:
    """Seal arbitrary header fields and body bytes, written from docs/wire.md alone.

    Lets tests build batches that `wire.seal` refuses to make (bad counts, bombs, lies).
    """
    packed = zstandard.ZstdCompressor(level=3).compress(body) if compress else body
    computed = {
        "hub_key": key_id(hub),
        "cloud_key": key_id(cloud_public),
        "epk": b64(raw(eph)),
        "nonce": b64(nonce),
        "compression": "zstd" if compress else "none",
        "body_len": len(body) if body_len is None else body_len,
    }
    full = {"v": 1, **header}
    for name, value in computed.items():  # spec order; an override in `header` keeps its place
        full.setdefault(name, value)
    header_bytes = json.dumps(full, separators=(",", ":")).encode()
    prefix = magic + struct.pack(">H", len(header_bytes)) + header_bytes
    shared = eph.exchange(cloud_public)
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=raw(eph) + raw(cloud_public),
        info=b"tecsa/v1/batch",
    ).derive(shared)
    cipher = AESGCM(key).encrypt(nonce, packed, prefix)
    signed = prefix + struct.pack(">I", len(cipher)) + cipher
    return signed + hub.sign(signed)


def header_fields(**overrides: Any) -> dict[str, Any]:
    base = {
        "hub_id": "hub-test-01",
        "batch_id": "019ac9a1-0000-7000-8000-000000000009",
        "seq": 3,
        "created_at": "2026-11-28T10:00:00Z",
        "priority": "routine",
        "counts": {"readings": 0, "medical_records": 0, "triage_results": 0, "audit_events": 0},
    }
    base.update(overrides)
    return base


# ---- hypothesis strategies -------------------------------------------------------------------

slugs = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
idents = st.from_regex(r"[\x21-\x7e]{1,20}", fullmatch=True)
units = st.sampled_from(["mm[Hg]", "kPa", "Cel", "[degF]", "/min", "%", "kg", "mg/dL", "mmol/L"])
aware = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
naive = st.datetimes(min_value=datetime(1582, 1, 1), max_value=datetime(9999, 12, 31))
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | finite | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
hashes_ = st.binary(min_size=32, max_size=32).map(lambda b: "sha256:" + b.hex())

readings = st.builds(
    Reading,
    id=st.uuids(),
    device_id=idents,
    kind=slugs,
    components=st.dictionaries(
        slugs, st.builds(Component, value=st.none() | finite, unit=units), min_size=1, max_size=4
    ),
    device_time=st.none() | naive,
    measured_at=st.none() | aware,
    received_at=aware,
    quality=st.lists(slugs, max_size=3).map(tuple),
    patient_id=st.none() | idents,
    encounter_id=st.none() | st.uuids(),
    device_seq=st.none() | st.integers(0, 0xFFFF_FFFF),
)
records = st.builds(
    MedicalRecord,
    id=st.uuids(),
    revision=st.integers(1, 1000),
    updated_at=aware,
    patient_id=idents,
    agent_id=idents,
    type=slugs,
    payload=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    content_hash=hashes_,
    flags=st.lists(slugs, max_size=2).map(tuple),
)
triages = st.builds(
    TriageResult,
    id=st.uuids(),
    patient_id=st.none() | idents,
    reading_ids=st.lists(st.uuids(), max_size=3).map(tuple),
    computed_at=aware,
    band=st.sampled_from(RiskBand),
    score=finite,
    news2_score=st.none() | st.integers(0, 20),
    news2_subscores=st.dictionaries(slugs, st.integers(0, 3), max_size=7),
    complete=st.booleans(),
    model_version=st.text(min_size=1, max_size=10),
    input_hash=hashes_,
)
audits = st.builds(
    AuditEvent,
    id=st.uuids(),
    at=aware,
    actor=idents,
    action=slugs,
    detail=st.dictionaries(st.text(max_size=8), json_values, max_size=3),
)


def _unique(items: list[Any]) -> tuple[Any, ...]:
    seen: dict[Any, Any] = {}
    for item in items:
        seen.setdefault(item.id, item)
    return tuple(seen.values())


bodies = st.builds(
    Body,
    readings=st.lists(readings, max_size=6).map(_unique),
    medical_records=st.lists(records, max_size=3).map(_unique),
    triage_results=st.lists(triages, max_size=3).map(_unique),
    audit_events=st.lists(audits, max_size=3).map(_unique),
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
