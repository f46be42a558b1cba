"""Fixtures for real services on 127.0.0.1, each test with its own database, broker or bucket.

PostgreSQL and the system Mosquitto are started by .ci/run (or were already running). A test that
needs to kill or restart a broker gets one of its own (`mosquitto`); `db` is a migrated database
cloned from a session template; `s3_bucket` lives on a moto server started for the session.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

import boto3
import pytest
from moto.server import ThreadedMotoServer
from services import MosquittoBroker, conninfo, create_database, drop_database

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of a moto S3 server on 127.0.0.1 (a real S3 HTTP API), for the whole session."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A new, empty bucket for one test."""
    name = f"test-{uuid.uuid4().hex[:20]}"
    s3_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def s3_client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture
def mosquitto(tmp_path) -> Iterator[MosquittoBroker]:
    """A Mosquitto of this test's own; the test may stop, kill and restart it."""
    with MosquittoBroker(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture(scope="session")
def migrated_template() -> Iterator[str]:
    """A database with every cloud migration applied, cloned for each test (fast and isolated)."""
    from cloud.db import upgrade  # noqa: PLC0415 - only sessions that use the database pay for it

    name = create_database()
    try:
        upgrade(conninfo(name))
        yield name
    finally:
        drop_database(name)


@pytest.fixture
def empty_db() -> Iterator[str]:
    """Connection string of a new, empty database."""
    name = create_database()
    yield conninfo(name)
    drop_database(name)


@pytest.fixture
def db(migrated_template: str) -> Iterator[str]:
    """Connection string of a new database with the current cloud schema."""
    name = create_database(template=migrated_template)
    yield conninfo(name)
    drop_database(name)
