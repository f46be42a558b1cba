from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey


@pytest.fixture(scope="session")
def hub_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


@pytest.fixture(scope="session")
def other_hub_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes(range(97, 129)))


@pytest.fixture(scope="session")
def cloud_key() -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(bytes(range(33, 65)))
