"""psycopg's exceptions never leave cloud.db: each becomes the error that says what to do."""

from __future__ import annotations

import pytest
from services import conninfo

from cloud.config import DatabaseSettings
from cloud.db import (
    DatabaseConflict,
    DatabaseError,
    DatabaseUnavailable,
    DataRefused,
    SchemaError,
    connect,
    open_pool,
    pooled,
    translated,
    upgrade,
)
from cloud.errors import CloudError, RetryableCloudError

UNREACHABLE = "host=127.0.0.1 port=1 user=postgres dbname=tecsa connect_timeout=5"


def test_an_unreachable_server_is_retryable_and_typed():
    with pytest.raises(DatabaseUnavailable) as caught:
        connect(UNREACHABLE)
    assert isinstance(caught.value, RetryableCloudError)
    assert caught.value.retryable
    assert "127.0.0.1" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not isinstance(caught.value.__cause__, CloudError)


def test_a_missing_database_says_how_to_create_it():
    with pytest.raises(
        SchemaError, match=r"'tecsa_no_such_db' does not exist: create it"
    ) as caught:
        connect("host=127.0.0.1 port=5432 user=postgres dbname=tecsa_no_such_db")
    assert not caught.value.retryable


def test_upgrade_of_an_unreachable_server_is_retryable():
    with pytest.raises(DatabaseUnavailable):
        upgrade("postgresql://postgres@127.0.0.1:1/tecsa")


def test_a_malformed_url_is_a_typed_error():
    with pytest.raises(DatabaseError):
        connect("this is = not a conninfo '")


@pytest.mark.parametrize(
    ("sqlstate", "expected", "retryable"),
    [
        ("40001", DatabaseConflict, True),  # serialization_failure
        ("40P01", DatabaseConflict, True),  # deadlock_detected
        ("57P01", DatabaseUnavailable, True),  # admin_shutdown
        ("53100", DatabaseUnavailable, True),  # disk_full
        ("42P01", SchemaError, False),  # undefined_table
        ("23505", DataRefused, False),  # unique_violation
        ("22P05", DataRefused, False),  # untranslatable_character
        ("XX000", DatabaseError, False),  # internal_error
    ],
)
def test_server_errors_map_to_what_the_caller_can_do(conn, sqlstate, expected, retryable):
    with pytest.raises(expected) as caught, translated():
        conn.execute(f"DO $$ BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = '{sqlstate}'; END $$")
    assert type(caught.value) is expected
    assert caught.value.sqlstate == sqlstate
    assert caught.value.retryable is retryable
    assert "boom" in str(caught.value)


def test_a_pool_hands_out_working_connections(db):
    pool = open_pool(DatabaseSettings(url=db, pool_max=2))
    try:
        with pooled(pool, timeout=10) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
            assert c.autocommit
    finally:
        pool.close()


def test_a_pool_that_cannot_connect_times_out_as_unavailable():
    pool = open_pool(DatabaseSettings(url=UNREACHABLE, pool_max=1))
    try:
        with pytest.raises(DatabaseUnavailable), pooled(pool, timeout=0.2):
            pytest.fail("no connection can be handed out")
    finally:
        pool.close()


def test_the_test_database_helper_builds_conninfo():
    assert "dbname=x" in conninfo("x")
