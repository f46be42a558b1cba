from __future__ import annotations

import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from wire.errors import KeyFileError
from wire.keys import (
    fingerprint,
    key_id,
    load_private_key,
    load_public_key,
    save_private_key,
    save_public_key,
)


def test_private_key_file_is_0600_and_loads_back(tmp_path):
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "keys" / "identity.pem"
    old = os.umask(0)
    try:
        save_private_key(key, path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = load_private_key(path, Ed25519PrivateKey)
    assert key_id(loaded) == key_id(key)


def test_save_refuses_to_replace_an_existing_key(tmp_path):
    path = tmp_path / "k.pem"
    first = X25519PrivateKey.generate()
    save_private_key(first, path)
    with pytest.raises(KeyFileError, match="exists"):
        save_private_key(X25519PrivateKey.generate(), path)
    assert key_id(load_private_key(path, X25519PrivateKey)) == key_id(first)
    assert not path.with_name("k.pem.tmp").exists()
    save_private_key(X25519PrivateKey.generate(), path, overwrite=True)
    assert key_id(load_private_key(path, X25519PrivateKey)) != key_id(first)


def test_widely_readable_private_key_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "k.pem"
    save_private_key(Ed25519PrivateKey.generate(), path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_private_key(path, Ed25519PrivateKey)


def test_wrong_key_type_is_refused(tmp_path):
    path = tmp_path / "k.pem"
    save_private_key(X25519PrivateKey.generate(), path)
    with pytest.raises(KeyFileError, match="expected Ed25519PrivateKey"):
        load_private_key(path, Ed25519PrivateKey)


def test_public_key_round_trip(tmp_path):
    key = X25519PrivateKey.generate()
    path = tmp_path / "ingest.pub.pem"
    save_public_key(key, path)
    assert key_id(load_public_key(path, X25519PublicKey)) == key_id(key)
    with pytest.raises(KeyFileError):
        load_public_key(path, Ed25519PublicKey)


@pytest.mark.parametrize(
    ("content", "reason"), [(b"garbage", "not an unencrypted PEM"), (b"", "not an unencrypted PEM")]
)
def test_garbage_and_missing_files(tmp_path, content, reason):
    path = tmp_path / "k.pem"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match=reason):
        load_private_key(path, Ed25519PrivateKey)
    with pytest.raises(KeyFileError, match="does not exist"):
        load_private_key(tmp_path / "nope.pem", Ed25519PrivateKey)
    with pytest.raises(KeyFileError, match="directory"):
        load_public_key(tmp_path, Ed25519PublicKey)


def test_huge_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "k.pem"
    path.write_bytes(b"x" * 100_000)
    with pytest.raises(KeyFileError, match="far smaller"):
        load_public_key(path, Ed25519PublicKey)


def test_fingerprint_and_key_id():
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    assert fingerprint(key) == fingerprint(key.public_key())
    assert len(fingerprint(key)) == 64
    assert key_id(key) == fingerprint(key)[:16] == "65b60673d6ed884b"
