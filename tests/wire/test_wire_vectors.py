"""Known-answer vectors: fixed keys and nonces give exactly the committed bytes, both ways."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from wire_support import load_vectors, seal_raw

from wire import Body, Compression, IntegrityError, Priority, open_sealed, peek_header, seal
from wire.keys import raw_public

VECTORS = load_vectors()


def _keys(v):
    i = v["inputs"]
    hub = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(i["hub_ed25519_private"]))
    cloud = X25519PrivateKey.from_private_bytes(bytes.fromhex(i["cloud_x25519_private"]))
    eph = X25519PrivateKey.from_private_bytes(bytes.fromhex(i["ephemeral_x25519_private"]))
    return hub, cloud, eph


def test_there_are_vectors():
    assert {v["name"] for v in VECTORS} >= {"v1-none-one-reading", "v1-zstd-mixed"}


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_seal_gives_the_vector_bytes(v):
    hub, cloud, eph = _keys(v)
    i = v["inputs"]
    sealed = seal(
        Body.model_validate(i["body"]),
        hub_id=i["hub_id"],
        batch_id=UUID(i["batch_id"]),
        seq=i["seq"],
        now=datetime.fromisoformat(i["created_at"]),
        priority=Priority(i["priority"]),
        hub_key=hub,
        cloud_key=cloud.public_key(),
        ephemeral_key=eph,
        nonce=bytes.fromhex(i["nonce"]),
        compression=Compression(i["compression"]),
    )
    assert sealed.hex() == v["sealed_hex"]


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_open_gives_the_vector_body(v):
    hub, cloud, _ = _keys(v)
    opened = open_sealed(bytes.fromhex(v["sealed_hex"]), hub_key=hub.public_key(), cloud_keys=cloud)
    assert opened.body == Body.model_validate(v["inputs"]["body"])
    assert opened.body.model_dump_json() == v["body_json"]
    assert opened.header.hub_id == v["inputs"]["hub_id"]
    assert str(opened.header.batch_id) == v["inputs"]["batch_id"]
    assert opened.header.seq == v["inputs"]["seq"]
    assert opened.header.priority == v["inputs"]["priority"]
    assert peek_header(bytes.fromhex(v["sealed_hex"])) == opened.header


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_public_keys_in_vector_match_private_ones(v):
    hub, cloud, _ = _keys(v)
    assert raw_public(hub).hex() == v["inputs"]["hub_ed25519_public"]
    assert raw_public(cloud).hex() == v["inputs"]["cloud_x25519_public"]


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_vector_signed_by_other_hub_is_refused(v):
    _, cloud, _ = _keys(v)
    other = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["other_hub_ed25519_private"]))
    with pytest.raises(IntegrityError):
        open_sealed(bytes.fromhex(v["sealed_hex"]), hub_key=other.public_key(), cloud_keys=cloud)


def test_independent_sealer_from_the_spec_matches_the_vector():
    """docs/wire.md is enough to reproduce the bytes: seal_raw was written from it alone."""
    v = next(v for v in VECTORS if v["inputs"]["compression"] == "none")
    hub, cloud, eph = _keys(v)
    i = v["inputs"]
    body = v["body_json"].encode()
    header = {
        "hub_id": i["hub_id"],
        "batch_id": i["batch_id"],
        "seq": i["seq"],
        "created_at": i["created_at"],
        "priority": i["priority"],
        "counts": {"readings": 1, "medical_records": 0, "triage_results": 0, "audit_events": 0},
    }
    # The spec fixes the header's key order: v, hub_id, batch_id, seq, created_at, priority,
    # counts, hub_key, cloud_key, epk, nonce, compression, body_len.
    ordered = {"v": 1, **header}
    sealed = seal_raw(
        ordered,
        body,
        hub=hub,
        cloud_public=cloud.public_key(),
        eph=eph,
        nonce=bytes.fromhex(i["nonce"]),
        compress=False,
    )
    assert sealed.hex() == v["sealed_hex"]
