from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from wire.acks import Ack, AckCounts, AckStatus, sign_ack, verify_ack
from wire.errors import DecodeError, IntegrityError, TooLarge, UnsupportedVersion, WireError
from wire.ids import uuid7
from wire.keys import key_id

CLOUD = Ed25519PrivateKey.from_private_bytes(bytes(range(129, 161)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(161, 193)))
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _ack(**kw):
    base = {
        "hub_id": "hub-1",
        "batch_id": uuid7(NOW, bytes(10)),
        "seq": 9,
        "status": AckStatus.STORED,
        "counts": AckCounts(inserted=500, duplicate=0),
        "acked_at": NOW,
        "key": key_id(CLOUD),
        "payload_sha256": hashlib.sha256(b"sealed").hexdigest(),
    }
    return Ack(**(base | kw))


def test_round_trip_and_delivered_meaning():
    ack = _ack()
    data = sign_ack(ack, CLOUD)
    assert verify_ack(data, cloud_key=CLOUD.public_key(), hub_id="hub-1") == ack
    assert ack.delivered
    assert _ack(status=AckStatus.DUPLICATE).delivered
    assert not _ack(status=AckStatus.REJECTED, reason="signature does not verify").delivered


def test_forged_ack_is_refused():
    forged = sign_ack(_ack(key=key_id(OTHER)), OTHER)
    with pytest.raises(IntegrityError, match="signature"):
        verify_ack(forged, cloud_key=CLOUD.public_key(), hub_id="hub-1")


def test_ack_for_another_hub_is_refused():
    data = sign_ack(_ack(hub_id="hub-2"), CLOUD)
    with pytest.raises(IntegrityError, match="addressed to hub hub-2"):
        verify_ack(data, cloud_key=CLOUD.public_key(), hub_id="hub-1")


def test_sign_checks_the_key_id():
    with pytest.raises(ValueError, match="key id"):
        sign_ack(_ack(key="0" * 16), CLOUD)


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda d: d[:-1], DecodeError),
        (lambda d: b"XXX" + d[3:], DecodeError),
        (lambda d: d[:3] + b"\x02" + d[4:], UnsupportedVersion),
        (lambda d: d + bytes(5000), TooLarge),
        (lambda d: d[:10] + bytes([d[10] ^ 1]) + d[11:], IntegrityError),
    ],
)
def test_bad_bytes_are_typed_errors(mutate, error):
    with pytest.raises(error):
        verify_ack(mutate(sign_ack(_ack(), CLOUD)), cloud_key=CLOUD.public_key(), hub_id="hub-1")


@given(st.binary(max_size=600))
def test_any_bytes_raise_only_wire_errors(data):
    with contextlib.suppress(WireError):
        verify_ack(data, cloud_key=CLOUD.public_key(), hub_id="hub-1")


def test_an_ack_answers_only_the_exact_bytes_it_judged():
    ack = _ack(status=AckStatus.REJECTED, reason="signature does not verify")
    assert ack.answers(b"sealed")
    assert not ack.answers(b"sealed but tampered")
