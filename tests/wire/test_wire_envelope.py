"""Envelope behaviour on good and bad input: every refusal is a typed WireError with a reason."""

from __future__ import annotations

import json
import random
import struct
import tracemalloc
from uuid import uuid4

import pytest
import zstandard
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import ValidationError
from wire_support import NOW, header_fields, seal_raw

from wire import (
    Body,
    Compression,
    DecodeError,
    IntegrityError,
    Limits,
    Priority,
    TooLarge,
    UnsupportedVersion,
    open_sealed,
    peek_header,
    seal,
)
from wire.ids import uuid7
from wire.keys import key_id
from wire.samples import sample_body

EPH = X25519PrivateKey.from_private_bytes(bytes(range(65, 97)))
NONCE = bytes(12)


def _seal(body, hub_key, cloud_key, **kw):
    args = {
        "hub_id": "hub-test-01",
        "batch_id": uuid7(NOW, bytes(10)),
        "seq": 1,
        "now": NOW,
        "priority": Priority.ROUTINE,
        "hub_key": hub_key,
        "cloud_key": cloud_key.public_key(),
        "ephemeral_key": EPH,
        "nonce": NONCE,
    } | kw
    return seal(body, **args)


def _sample(n=20):
    return sample_body(n, random.Random(7), NOW)


def test_round_trip_sample_batch(hub_key, cloud_key):
    body = _sample(500)
    opened = open_sealed(
        _seal(body, hub_key, cloud_key), hub_key=hub_key.public_key(), cloud_keys=cloud_key
    )
    assert opened.body == body
    assert opened.header.counts.readings == 500


def test_keyring_by_id_selects_the_right_ingest_key(hub_key, cloud_key):
    old = X25519PrivateKey.from_private_bytes(bytes(range(2, 34)))
    sealed = _seal(_sample(), hub_key, cloud_key)
    ring = {key_id(old): old, key_id(cloud_key): cloud_key}
    assert open_sealed(sealed, hub_key=hub_key.public_key(), cloud_keys=ring).body == _sample()


def test_sealed_to_another_ingest_key_is_refused(hub_key, cloud_key):
    other = X25519PrivateKey.from_private_bytes(bytes(range(2, 34)))
    sealed = _seal(_sample(), hub_key, cloud_key)
    with pytest.raises(IntegrityError, match="not ours"):
        open_sealed(sealed, hub_key=hub_key.public_key(), cloud_keys=other)
    with pytest.raises(IntegrityError, match="not ours"):
        open_sealed(sealed, hub_key=hub_key.public_key(), cloud_keys={})


def test_other_hub_signature_is_refused(hub_key, other_hub_key, cloud_key):
    sealed = _seal(_sample(), other_hub_key, cloud_key)
    with pytest.raises(IntegrityError, match="signature"):
        open_sealed(sealed, hub_key=hub_key.public_key(), cloud_keys=cloud_key)


def test_hub_cannot_claim_another_hubs_key_id(hub_key, cloud_key):
    """Signed by the right key but naming another key id: refused (no key confusion)."""
    sealed = seal_raw(
        header_fields(hub_key="0000000000000000"),
        b'{"v":1}',
        hub=hub_key,
        cloud_public=cloud_key.public_key(),
        eph=EPH,
        nonce=NONCE,
    )
    with pytest.raises(IntegrityError, match="different hub key"):
        open_sealed(sealed, hub_key=hub_key.public_key(), cloud_keys=cloud_key)


def test_unsupported_version_is_named(hub_key, cloud_key):
    sealed = bytearray(_seal(_sample(), hub_key, cloud_key))
    sealed[3] = 2
    with pytest.raises(UnsupportedVersion) as info:
        open_sealed(bytes(sealed), hub_key=hub_key.public_key(), cloud_keys=cloud_key)
    assert info.value.version == 2
    with pytest.raises(UnsupportedVersion):
        peek_header(bytes(sealed))


def test_bad_magic_is_a_decode_error(hub_key, cloud_key):
    sealed = b"XXX" + _seal(_sample(), hub_key, cloud_key)[3:]
    with pytest.raises(DecodeError, match="magic"):
        open_sealed(sealed, hub_key=hub_key.public_key(), cloud_keys=cloud_key)


def test_oversized_input_is_refused_before_any_work(hub_key, cloud_key):
    sealed = _seal(_sample(), hub_key, cloud_key)
    with pytest.raises(TooLarge) as info:
        open_sealed(
            sealed,
            hub_key=hub_key.public_key(),
            cloud_keys=cloud_key,
            limits=Limits(max_sealed=100),
        )
    assert (info.value.size, info.value.limit) == (len(sealed), 100)


def test_seal_refuses_batches_over_the_caps(hub_key, cloud_key):
    with pytest.raises(TooLarge):
        _seal(_sample(30), hub_key, cloud_key, limits=Limits(max_items=10))
    with pytest.raises(TooLarge):
        _seal(_sample(30), hub_key, cloud_key, limits=Limits(max_body=100))
    with pytest.raises(TooLarge):
        _seal(_sample(30), hub_key, cloud_key, limits=Limits(max_sealed=500))


def test_declared_body_length_over_cap_is_refused_before_decrypting(hub_key, cloud_key):
    sealed = seal_raw(
        header_fields(),
        b'{"v":1}',
        hub=hub_key,
        cloud_public=cloud_key.public_key(),
        eph=EPH,
        nonce=NONCE,
        body_len=10**9,
    )
    with pytest.raises(TooLarge) as info:
        open_sealed(sealed, hub_key=hub_key.public_key(), cloud_keys=cloud_key)
    assert info.value.size == 10**9


def test_decompression_bomb_allocates_no_more_than_the_cap(hub_key, cloud_key):
    """A body that claims 1 KiB but inflates to 256 MiB is refused within about the cap."""
    cctx = zstandard.ZstdCompressor(level=19)
    chunker = cctx.chunker(size=256 * 1024 * 1024, chunk_size=1 << 20)
    zero = bytes(1 << 20)
    bomb = b"".join(c for _ in range(256) for c in chunker.compress(zero)) + b"".join(
        chunker.finish()
    )
    assert len(bomb) < 64 * 1024
    header = {"v": 1, **header_fields()}
    sealed = _reseal_packed(header, bomb, hub_key, cloud_key, body_len=1024)
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge, match="expands past"):
            open_sealed(sealed, hub_key=hub_key.public_key(), cloud_keys=cloud_key)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024  # far below the 256 MiB the bomb holds


def _reseal_packed(header, packed, hub_key, cloud_key, *, body_len):
    return seal_raw(
        {**header, "compression": "zstd"},
        packed,
        hub=hub_key,
        cloud_public=cloud_key.public_key(),
        eph=EPH,
        nonce=NONCE,
        compress=False,
        body_len=body_len,
    )


def test_body_shorter_than_declared_is_refused(hub_key, cloud_key):
    sealed = seal_raw(
        header_fields(),
        b'{"v":1}',
        hub=hub_key,
        cloud_public=cloud_key.public_key(),
        eph=EPH,
        nonce=NONCE,
        body_len=100,
    )
    with pytest.raises(DecodeError, match="header says 100"):
        open_sealed(sealed, hub_key=hub_key.public_key(), cloud_keys=cloud_key)


def test_counts_that_lie_are_refused(hub_key, cloud_key):
    counts = {"readings": 5, "medical_records": 0, "triage_results": 0, "audit_events": 0}
    sealed = seal_raw(
        header_fields(counts=counts),
        b'{"v":1}',
        hub=hub_key,
        cloud_public=cloud_key.public_key(),
        eph=EPH,
        nonce=NONCE,
    )
    with pytest.raises(DecodeError, match="counts"):
        open_sealed(sealed, hub_key=hub_key.public_key(), cloud_keys=cloud_key)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "body does not match"),
        (b'{"v":3}', "body does not match"),
        (b'{"v":1,"readings":[{"id":"x"}]}', "readings.0"),
        (b'{"v":1,"surprise":[]}', "surprise"),
    ],
)
def test_invalid_bodies_are_refused_with_the_reason(hub_key, cloud_key, body, reason):
    sealed = seal_raw(
        header_fields(),
        body,
        hub=hub_key,
        cloud_public=cloud_key.public_key(),
        eph=EPH,
        nonce=NONCE,
    )
    with pytest.raises(DecodeError, match=reason):
        open_sealed(sealed, hub_key=hub_key.public_key(), cloud_keys=cloud_key)


def test_duplicate_item_ids_in_one_batch_are_refused(hub_key, cloud_key):
    r = _sample(1).readings[0].model_dump(mode="json")
    body = json.dumps({"v": 1, "readings": [r, r]}).encode()
    counts = {"readings": 2, "medical_records": 0, "triage_results": 0, "audit_events": 0}
    sealed = seal_raw(
        header_fields(counts=counts),
        body,
        hub=hub_key,
        cloud_public=cloud_key.public_key(),
        eph=EPH,
        nonce=NONCE,
    )
    with pytest.raises(DecodeError, match="duplicate item id"):
        open_sealed(sealed, hub_key=hub_key.public_key(), cloud_keys=cloud_key)


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"hub_id": "hub/+/#"}, "hub_id"),
        ({"batch_id": "00000000-0000-4000-8000-000000000000"}, "UUIDv7"),
        ({"seq": -1}, "seq"),
        ({"created_at": "2026-11-28T10:00:00"}, "created_at"),
        ({"priority": "whenever"}, "priority"),
        ({"epk": "AAAA"}, "epk must be 32 bytes"),
    ],
)
def test_invalid_headers_are_refused_with_the_field(hub_key, cloud_key, override, reason):
    sealed = seal_raw(
        header_fields(**override),
        b'{"v":1}',
        hub=hub_key,
        cloud_public=cloud_key.public_key(),
        eph=EPH,
        nonce=NONCE,
    )
    with pytest.raises(DecodeError, match=reason):
        open_sealed(sealed, hub_key=hub_key.public_key(), cloud_keys=cloud_key)


def test_truncated_and_padded_inputs_are_decode_errors(hub_key, cloud_key):
    sealed = _seal(_sample(), hub_key, cloud_key)
    for bad in (sealed[:5], sealed[:-1], sealed + b"\0", b""):
        with pytest.raises((DecodeError, IntegrityError)):
            open_sealed(bad, hub_key=hub_key.public_key(), cloud_keys=cloud_key)
        with pytest.raises(DecodeError):
            peek_header(bad)


def test_header_length_past_the_end_is_a_decode_error():
    data = b"TSB\x01" + struct.pack(">H", 4000) + bytes(100)
    with pytest.raises(DecodeError, match="truncated"):
        peek_header(data)


def test_no_compression_round_trips(hub_key, cloud_key):
    body = _sample()
    sealed = _seal(body, hub_key, cloud_key, compression=Compression.NONE)
    assert peek_header(sealed).compression == "none"
    assert open_sealed(sealed, hub_key=hub_key.public_key(), cloud_keys=cloud_key).body == body


def test_header_carries_no_health_data(hub_key, cloud_key):
    body = _sample(5)
    header = peek_header(_seal(body, hub_key, cloud_key))
    text = header.model_dump_json()
    for r in body.readings:
        assert r.patient_id not in text
        assert str(r.id) not in text


def test_seal_checks_the_nonce_length(hub_key, cloud_key):
    with pytest.raises(ValueError, match="nonce"):
        _seal(_sample(), hub_key, cloud_key, nonce=b"short")


def test_empty_body_round_trips(hub_key, cloud_key):
    sealed = _seal(Body(), hub_key, cloud_key)
    assert open_sealed(sealed, hub_key=hub_key.public_key(), cloud_keys=cloud_key).body == Body()


def test_window_s_and_at_need_body_version_2():
    """A version 1 body is still read, but one carrying v2's `window_s` or `at` is refused."""
    result = {
        "id": str(uuid4()),
        "patient_id": "pat-1",
        "reading_ids": [],
        "computed_at": "2026-11-28T12:00:00Z",
        "band": "low",
        "score": 0.1,
        "news2_score": 0,
        "news2_subscores": {},
        "complete": False,
        "model_version": "triage-v1",
        "input_hash": "sha256:" + "0" * 64,
    }
    v1 = Body.model_validate({"v": 1, "triage_results": [result]})
    assert v1.triage_results[0].window_s is None
    v2 = Body.model_validate({"v": 2, "triage_results": [result | {"window_s": 7200}]})
    assert v2.triage_results[0].window_s == 7200
    with pytest.raises(ValidationError, match="schema version 2"):
        Body.model_validate({"v": 1, "triage_results": [result | {"window_s": 7200}]})
    with pytest.raises(ValidationError, match="schema version 2"):
        Body.model_validate({"v": 1, "triage_results": [result | {"at": "2026-11-28T12:00:00Z"}]})
