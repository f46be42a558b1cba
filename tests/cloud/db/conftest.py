from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from db_support import HUB_ID, conninfo, create_database, drop_database

from cloud.db import add_hub, connect, upgrade


@pytest.fixture(scope="session")
def migrated_template():
    """A database with every migration applied, cloned for each test (fast, and isolated)."""
    name = create_database()
    try:
        upgrade(conninfo(name))
        yield name
    finally:
        drop_database(name)


@pytest.fixture
def empty_db():
    name = create_database()
    yield conninfo(name)
    drop_database(name)


@pytest.fixture
def db(migrated_template):
    name = create_database(template=migrated_template)
    yield conninfo(name)
    drop_database(name)


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
