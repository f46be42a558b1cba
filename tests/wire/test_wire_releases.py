from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from wire.errors import TooLarge, UnsupportedVersion, WireError
from wire.keys import key_id
from wire.releases import (
    MAX_RELEASE,
    SIGNATURE_LEN,
    MalformedRelease,
    ReleaseChecksumMismatch,
    ReleaseManifest,
    ReleaseSignatureError,
    SelfTest,
    SelfTestVector,
    open_release,
    seal_release,
    version_key,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ARTIFACT = b"TFL3" + bytes(range(200))


def manifest(artifact: bytes = ARTIFACT, **changes) -> ReleaseManifest:
    values = {
        "version": "triage-2",
        "created_at": datetime(2026, 11, 28, 12, tzinfo=UTC),
        "key": key_id(KEY),
        "artifact_sha256": hashlib.sha256(artifact).hexdigest(),
        "artifact_size": len(artifact),
        "metrics": {"auroc": 0.91, "int8_agreement": 0.995},
        "training_data_digest": "sha256:" + "0" * 64,
        "feature_spec": "1",
        "band_thresholds": {"low": 0.0, "medium": 0.4, "high": 0.8},
        "self_test": SelfTest(
            tolerance=0.02,
            vectors=(SelfTestVector(inputs=(0.0, 1.5), probability=0.3, band="low"),),
        ),
    }
    return ReleaseManifest(**(values | changes))


def test_round_trip():
    sealed = seal_release(manifest(), ARTIFACT, KEY)
    release = open_release(sealed, cloud_key=KEY.public_key())
    assert release.manifest == manifest()
    assert release.artifact == ARTIFACT
    assert release.sealed == sealed
    assert release.version == "triage-2"


def test_layout_is_magic_lengths_canonical_manifest_artifact_signature():
    sealed = seal_release(manifest(), ARTIFACT, KEY)
    magic, version, mlen, alen = struct.unpack_from(">3sBII", sealed)
    assert (magic, version, alen) == (b"TSR", 1, len(ARTIFACT))
    body = sealed[12 : 12 + mlen]
    assert body.startswith(b'{"artifact_sha256":"')  # RFC 8785: keys sorted, no spaces
    assert b" " not in body
    assert sealed[12 + mlen : -SIGNATURE_LEN] == ARTIFACT
    KEY.public_key().verify(sealed[-SIGNATURE_LEN:], sealed[:-SIGNATURE_LEN])


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x80
    return bytes(out)


@pytest.mark.parametrize("where", ["manifest", "artifact", "signature"])
def test_any_flipped_byte_fails_the_signature(where):
    sealed = seal_release(manifest(), ARTIFACT, KEY)
    offset = {"manifest": 30, "artifact": len(sealed) - SIGNATURE_LEN - 5, "signature": -1}
    with pytest.raises(ReleaseSignatureError, match="does not verify"):
        open_release(_flip(sealed, offset[where]), cloud_key=KEY.public_key())


def test_wrong_key_is_refused():
    sealed = seal_release(manifest(), ARTIFACT, KEY)
    with pytest.raises(ReleaseSignatureError):
        open_release(sealed, cloud_key=Ed25519PrivateKey.generate().public_key())


def test_unsigned_is_refused():
    sealed = seal_release(manifest(), ARTIFACT, KEY)
    with pytest.raises(MalformedRelease, match="length mismatch"):
        open_release(sealed[:-SIGNATURE_LEN], cloud_key=KEY.public_key())


def _signed_raw(body: bytes, artifact: bytes, key: Ed25519PrivateKey = KEY) -> bytes:
    signed = struct.pack(">3sBII", b"TSR", 1, len(body), len(artifact)) + body + artifact
    return signed + key.sign(signed)


def test_checksum_mismatch_signed_by_the_cloud_is_refused():
    body = manifest().model_dump_json().encode()
    other = ARTIFACT[:-1] + b"\x00"
    with pytest.raises(ReleaseChecksumMismatch, match="SHA-256"):
        open_release(_signed_raw(body, other), cloud_key=KEY.public_key())
    with pytest.raises(ReleaseChecksumMismatch, match="bytes"):
        open_release(_signed_raw(body, ARTIFACT + b"x"), cloud_key=KEY.public_key())


def test_manifest_naming_another_key_is_refused():
    body = manifest(key="0" * 16).model_dump_json().encode()
    with pytest.raises(ReleaseSignatureError, match="different key"):
        open_release(_signed_raw(body, ARTIFACT), cloud_key=KEY.public_key())


def test_malformed_manifest_is_refused_with_its_field():
    with pytest.raises(MalformedRelease, match="version: Field required"):
        open_release(_signed_raw(b'{"v":1}', ARTIFACT), cloud_key=KEY.public_key())
    with pytest.raises(MalformedRelease, match="JSON"):
        open_release(_signed_raw(b"\xff{", ARTIFACT), cloud_key=KEY.public_key())


def test_oversized_is_refused_before_any_work():
    with pytest.raises(TooLarge) as info:
        open_release(bytes(MAX_RELEASE + 1), cloud_key=KEY.public_key())
    assert (info.value.size, info.value.limit) == (MAX_RELEASE + 1, MAX_RELEASE)
    big = bytes(MAX_RELEASE)
    with pytest.raises(TooLarge):
        seal_release(manifest(big), big, KEY)


def test_bad_magic_and_version():
    sealed = seal_release(manifest(), ARTIFACT, KEY)
    with pytest.raises(MalformedRelease, match="magic"):
        open_release(b"XXX" + sealed[3:], cloud_key=KEY.public_key())
    with pytest.raises(UnsupportedVersion):
        open_release(sealed[:3] + b"\x02" + sealed[4:], cloud_key=KEY.public_key())


def test_seal_refuses_a_manifest_that_does_not_describe_the_artifact():
    with pytest.raises(ValueError, match="SHA-256"):
        seal_release(manifest(), ARTIFACT + b"!", KEY)
    with pytest.raises(ValueError, match="key id"):
        seal_release(manifest(key="0" * 16), ARTIFACT, KEY)


def test_band_of_uses_the_highest_threshold_reached():
    m = manifest()
    assert [m.band_of(p) for p in (0.0, 0.39, 0.4, 0.95)] == ["low", "low", "medium", "high"]
    assert manifest(band_thresholds=None).band_of(0.9) is None


def test_version_order_is_numeric_within_names():
    versions = ["1.10", "1.9", "1.2", "triage-10", "triage-9"]
    assert sorted(versions, key=version_key) == ["1.2", "1.9", "1.10", "triage-9", "triage-10"]


@given(st.binary(max_size=600))
def test_only_wire_errors_escape(data):
    with pytest.raises(WireError):
        open_release(data, cloud_key=KEY.public_key())


@given(st.integers(min_value=0, max_value=400), st.integers(min_value=0, max_value=255))
def test_any_single_byte_change_is_refused(offset, value):
    sealed = seal_release(manifest(), ARTIFACT, KEY)
    offset %= len(sealed)
    if sealed[offset] == value:
        return
    changed = sealed[:offset] + bytes([value]) + sealed[offset + 1 :]
    with pytest.raises(WireError):
        open_release(changed, cloud_key=KEY.public_key())
