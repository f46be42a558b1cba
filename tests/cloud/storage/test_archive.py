"""The raw archive against a real S3 HTTP endpoint (moto server on 127.0.0.1)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from uuid import UUID

import pytest
from pydantic import SecretStr

from cloud.config import S3Settings
from cloud.storage.archive import Archive
from cloud.storage.errors import ArchiveConflict, StorageError, StorageUnavailable
from cloud.storage.keys import quarantine_key, raw_key
from wire.errors import InvalidTopic
from wire.ids import uuid7

DAY1 = datetime(2026, 11, 27, 23, 59, tzinfo=UTC)
DAY2 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def _archive(endpoint, bucket):
    return Archive.from_settings(
        S3Settings(
            endpoint_url=endpoint,
            bucket=bucket,
            access_key_id=SecretStr("test"),
            secret_access_key=SecretStr("test"),
        )
    )


def test_raw_key_is_dated_by_the_batch_id_not_the_arrival():
    batch = uuid7(DAY1, bytes(10))
    assert raw_key("hub-1", batch) == f"raw/hub-1/2026/11/27/{batch}"


def test_raw_key_refuses_hub_ids_that_would_escape_the_prefix():
    with pytest.raises(InvalidTopic):
        raw_key("../etc", uuid7(DAY1, bytes(10)))


def test_quarantine_key_is_content_addressed():
    key = quarantine_key(None, b"junk", DAY2)
    assert key == f"quarantine/2026/11/28/_unknown/{hashlib.sha256(b'junk').hexdigest()}"


def test_put_raw_is_idempotent_and_readable(s3_endpoint, s3_bucket):
    archive = _archive(s3_endpoint, s3_bucket)
    batch = uuid7(DAY1, bytes(10))
    key = archive.put_raw("hub-1", batch, b"sealed bytes")
    assert archive.put_raw("hub-1", batch, b"sealed bytes") == key
    assert archive.get(key) == b"sealed bytes"


def test_different_bytes_under_the_same_batch_id_never_overwrite(s3_endpoint, s3_bucket):
    archive = _archive(s3_endpoint, s3_bucket)
    batch = uuid7(DAY1, bytes(10))
    key = archive.put_raw("hub-1", batch, b"first")
    with pytest.raises(ArchiveConflict) as info:
        archive.put_raw("hub-1", batch, b"second")
    assert info.value.key == key
    assert archive.get(key) == b"first"


def test_iter_raw_filters_by_hub_and_date(s3_endpoint, s3_bucket):
    archive = _archive(s3_endpoint, s3_bucket)
    b1, b2, b3 = uuid7(DAY1, bytes(10)), uuid7(DAY2, bytes(10)), uuid7(DAY2, b"\1" * 10)
    archive.put_raw("hub-1", b1, b"1")
    archive.put_raw("hub-1", b2, b"2")
    archive.put_raw("hub-2", b3, b"3")
    archive.put_quarantine("hub-1", b"bad", DAY2)
    assert [o.key.rsplit("/", 1)[1] for o in archive.iter_raw()] == [str(b1), str(b2), str(b3)]
    assert [UUID(o.key.rsplit("/", 1)[1]) for o in archive.iter_raw("hub-1")] == [b1, b2]
    assert [UUID(o.key.rsplit("/", 1)[1]) for o in archive.iter_raw(since=date(2026, 11, 28))] == [
        b2,
        b3,
    ]
    assert all(o.size == 1 for o in archive.iter_raw())


def test_quarantine_keeps_the_bytes(s3_endpoint, s3_bucket):
    archive = _archive(s3_endpoint, s3_bucket)
    key = archive.put_quarantine("hub-9", b"\x00garbage", DAY2)
    assert archive.put_quarantine("hub-9", b"\x00garbage", DAY2) == key
    assert archive.get(key) == b"\x00garbage"


def test_ensure_bucket_creates_it_once(s3_endpoint):
    archive = _archive(s3_endpoint, "made-by-ensure")
    archive.ensure_bucket()
    archive.ensure_bucket()
    archive.put_quarantine(None, b"x", DAY2)


def test_missing_object_is_a_storage_error(s3_endpoint, s3_bucket):
    with pytest.raises(StorageError, match="NoSuchKey"):
        _archive(s3_endpoint, s3_bucket).get("raw/nope")


def test_unreachable_endpoint_is_retryable():
    archive = _archive("http://127.0.0.1:1", "any-bucket")
    with pytest.raises(StorageUnavailable) as info:
        archive.put_raw("hub-1", uuid7(DAY1, bytes(10)), b"x")
    assert info.value.retryable
