"""The hub registry against a real PostgreSQL."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.db import (
    HubExists,
    InvalidHub,
    UnknownHub,
    add_hub,
    get_hub,
    list_hubs,
    revoke_hub,
)
from cloud.errors import CloudError
from wire.keys import fingerprint, key_id, raw_public


def test_an_added_hub_is_listed_and_found_with_its_keys(conn, hub_key, exchange_key):
    hub, added = add_hub(
        conn,
        "hub-kita-01",
        hub_key.public_key(),
        exchange_key=exchange_key.public_key(),
        note="Kita",
    )
    assert added
    assert hub.hub_id == "hub-kita-01"
    assert hub.identity_key == raw_public(hub_key)
    assert hub.identity_key_id == key_id(hub_key)
    assert hub.exchange_key == raw_public(exchange_key)
    assert hub.status == "active"
    assert hub.active
    assert hub.revoked_at is None
    assert hub.note == "Kita"
    assert hub.fingerprint == fingerprint(hub_key)
    assert raw_public(hub.identity_public_key()) == raw_public(hub_key)
    assert get_hub(conn, "hub-kita-01") == hub
    assert list_hubs(conn) == [hub]
    assert get_hub(conn, "hub-unknown") is None


def test_hubs_are_listed_by_id(conn, hub_key, other_hub_key):
    add_hub(conn, "hub-b", other_hub_key.public_key())
    add_hub(conn, "hub-a", raw_public(hub_key))  # raw bytes are accepted too
    assert [h.hub_id for h in list_hubs(conn)] == ["hub-a", "hub-b"]


def test_adding_the_same_hub_with_the_same_key_again_changes_nothing(conn, hub_key):
    first, _ = add_hub(conn, "hub-a", hub_key.public_key(), note="first")
    again, added = add_hub(conn, "hub-a", hub_key.public_key(), note="second")
    assert not added
    assert again == first


def test_another_key_for_a_known_hub_is_refused(conn, hub_key, other_hub_key):
    add_hub(conn, "hub-a", hub_key.public_key())
    with pytest.raises(HubExists, match="another identity key") as caught:
        add_hub(conn, "hub-a", other_hub_key.public_key())
    assert caught.value.hub_id == "hub-a"
    assert get_hub(conn, "hub-a").identity_key == raw_public(hub_key)


def test_another_exchange_key_for_a_known_hub_is_refused(conn, hub_key, exchange_key):
    add_hub(conn, "hub-a", hub_key.public_key(), exchange_key=exchange_key.public_key())
    with pytest.raises(HubExists, match="exchange key"):
        add_hub(conn, "hub-a", hub_key.public_key(), exchange_key=bytes(range(200, 232)))


def test_one_key_cannot_serve_two_hubs(conn, hub_key):
    add_hub(conn, "hub-a", hub_key.public_key())
    with pytest.raises(HubExists, match="'hub-a'"):
        add_hub(conn, "hub-b", hub_key.public_key())
    assert get_hub(conn, "hub-b") is None


def test_revoking_marks_the_hub_once_and_it_is_never_re_added(conn, hub_key):
    add_hub(conn, "hub-a", hub_key.public_key())
    revoked = revoke_hub(conn, "hub-a", reason="stolen")
    assert revoked.status == "revoked"
    assert not revoked.active
    assert revoked.revoked_at is not None
    assert revoked.revoke_reason == "stolen"
    assert revoke_hub(conn, "hub-a", reason="again") == revoked
    with pytest.raises(HubExists, match="revoked"):
        add_hub(conn, "hub-a", hub_key.public_key())
    assert get_hub(conn, "hub-a") == revoked


def test_revoking_an_unknown_hub_names_it(conn):
    with pytest.raises(UnknownHub) as caught:
        revoke_hub(conn, "hub-ghost")
    assert caught.value.hub_id == "hub-ghost"
    assert "hub-ghost" in str(caught.value)


@pytest.mark.parametrize("hub_id", ["Hub-A", "-hub", "hub/a", "hub+", "", "a" * 64])
def test_a_hub_id_that_is_not_a_dns_label_is_refused(conn, hub_key, hub_id):
    with pytest.raises(InvalidHub):
        add_hub(conn, hub_id, hub_key.public_key())
    assert list_hubs(conn) == []


def test_a_key_that_is_not_32_raw_bytes_is_refused(conn):
    with pytest.raises(InvalidHub, match="identity"):
        add_hub(conn, "hub-a", b"\x01" * 31)
    with pytest.raises(InvalidHub, match="exchange"):
        add_hub(conn, "hub-a", Ed25519PrivateKey.generate().public_key(), exchange_key=b"x")
    with pytest.raises(InvalidHub):
        add_hub(conn, "hub-a", "not bytes")  # type: ignore[arg-type]
    assert issubclass(InvalidHub, CloudError)
