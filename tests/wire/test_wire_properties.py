"""Properties that hold for every input: round trips, and only WireError ever escapes."""

from __future__ import annotations

import contextlib

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from wire_support import NOW, bodies, load_vectors

from wire import (
    Body,
    Compression,
    DecodeError,
    IntegrityError,
    Priority,
    WireError,
    open_sealed,
    peek_header,
    seal,
)
from wire.ids import uuid7

EPH = X25519PrivateKey.from_private_bytes(bytes(range(65, 97)))
FIXTURES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
VECTOR = bytes.fromhex(
    next(v for v in load_vectors() if v["name"] == "v1-zstd-mixed")["sealed_hex"]
)


def _seal(body, hub_key, cloud_key, compression=Compression.ZSTD, seq=1):
    return seal(
        body,
        hub_id="hub-prop-01",
        batch_id=uuid7(NOW, bytes(10)),
        seq=seq,
        now=NOW,
        priority=Priority.ROUTINE,
        hub_key=hub_key,
        cloud_key=cloud_key.public_key(),
        ephemeral_key=EPH,
        nonce=bytes(12),
        compression=compression,
    )


@FIXTURES
@given(body=bodies, compression=st.sampled_from(Compression), seq=st.integers(0, 2**63 - 1))
def test_any_valid_batch_round_trips(hub_key, cloud_key, body, compression, seq):
    sealed = _seal(body, hub_key, cloud_key, compression, seq)
    opened = open_sealed(sealed, hub_key=hub_key.public_key(), cloud_keys=cloud_key)
    assert opened.body == body
    assert opened.header.seq == seq
    assert opened.header.counts.model_dump() == body.counts()


@FIXTURES
@given(data=st.binary(max_size=2048))
@example(data=b"")
@example(data=b"TSB\x01")
@example(data=b"TSB\x01\x00\x02{}" + bytes(84))
@example(data=VECTOR[:-1])
def test_any_bytes_raise_only_wire_errors(hub_key, cloud_key, data):
    for attempt in (
        lambda: open_sealed(data, hub_key=hub_key.public_key(), cloud_keys=cloud_key),
        lambda: peek_header(data),
    ):
        with contextlib.suppress(WireError):
            attempt()


@FIXTURES
@given(prefix_len=st.integers(0, 64), tail=st.binary(max_size=512))
def test_mutated_real_prefixes_raise_only_wire_errors(hub_key, cloud_key, prefix_len, tail):
    """Random tails on a genuine prefix reach deeper into the framing than random bytes do."""
    data = VECTOR[:prefix_len] + tail
    with pytest.raises(WireError):
        open_sealed(data, hub_key=hub_key.public_key(), cloud_keys=cloud_key)


@FIXTURES
@given(position=st.integers(4, len(VECTOR) - 1), flip=st.integers(1, 255))
def test_flipping_any_byte_after_the_magic_is_an_integrity_error(
    hub_key, cloud_key, position, flip
):
    """Everything after the 4-byte magic/version is signed: any change fails verification first."""
    data = bytearray(VECTOR)
    data[position] ^= flip
    with pytest.raises(IntegrityError):
        open_sealed(bytes(data), hub_key=hub_key.public_key(), cloud_keys=cloud_key)


@pytest.mark.parametrize("position", range(4))
def test_flipping_a_magic_byte_is_a_decode_error(hub_key, cloud_key, position):
    data = bytearray(VECTOR)
    data[position] ^= 0x40
    with pytest.raises(DecodeError):
        open_sealed(bytes(data), hub_key=hub_key.public_key(), cloud_keys=cloud_key)


def test_every_single_byte_flip_of_the_vector_is_refused(hub_key, cloud_key):
    """Exhaustive over positions (one flip pattern each), complementing the random property."""
    for position in range(len(VECTOR)):
        data = bytearray(VECTOR)
        data[position] ^= 0x01
        expected = DecodeError if position < 4 else IntegrityError
        with pytest.raises(expected):
            open_sealed(bytes(data), hub_key=hub_key.public_key(), cloud_keys=cloud_key)


@FIXTURES
@given(body=bodies)
def test_another_hubs_key_never_opens(hub_key, other_hub_key, cloud_key, body):
    sealed = _seal(body, other_hub_key, cloud_key)
    with pytest.raises(IntegrityError):
        open_sealed(sealed, hub_key=hub_key.public_key(), cloud_keys=cloud_key)


def test_body_json_is_stable_across_a_round_trip():
    body = Body()
    assert Body.model_validate_json(body.model_dump_json()) == body
