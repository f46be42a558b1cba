from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from db_support import HUB_ID

from cloud.db import add_hub, connect


@pytest.fixture
def conn(db):
    with connect(db) as c:
        c.autocommit = True
        yield c


@pytest.fixture(scope="session")
def hub_key():
    return Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


@pytest.fixture(scope="session")
def other_hub_key():
    return Ed25519PrivateKey.from_private_bytes(bytes(range(97, 129)))


@pytest.fixture(scope="session")
def exchange_key():
    return X25519PrivateKey.from_private_bytes(bytes(range(33, 65)))


@pytest.fixture
def hub(conn, hub_key):
    hub, _ = add_hub(conn, HUB_ID, hub_key.public_key(), note="test hub")
    return hub
