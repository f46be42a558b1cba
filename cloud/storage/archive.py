"""Write-once archive of sealed batches in S3 (or MinIO, SeaweedFS, the moto server)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cloud.storage.errors import ArchiveConflict, StorageError, StorageUnavailable
from cloud.storage.keys import quarantine_key, raw_key, raw_prefix

if TYPE_CHECKING:
    from collections.abc import Iterator
    from uuid import UUID

    from cloud.config import S3Settings

_SHA_META = "sha256"
_MAX_OBJECT = 64 * 1024 * 1024  # far above any sealed batch; refuse to read anything larger


@dataclass(frozen=True, slots=True)
class ArchivedObject:
    """One object found while listing the archive."""

    key: str
    size: int
    last_modified: datetime


class Archive:
    """The raw archive and the quarantine, in one bucket; objects are never overwritten."""

    def __init__(self, client: Any, bucket: str) -> None:  # noqa: ANN401 - boto3 client, untyped
        self._s3 = client
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: S3Settings) -> Archive:
        """Build the client from the cloud's S3 settings (retries and timeouts bounded)."""
        client = boto3.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id=_secret(settings.access_key_id),
            aws_secret_access_key=_secret(settings.secret_access_key),
            config=Config(
                connect_timeout=5,
                read_timeout=30,
                retries={"max_attempts": 3, "mode": "standard"},
                # The put carries Content-MD5 (and our own SHA-256 in the metadata): no CRC32
                # over every body on top, nor on every read.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                tcp_keepalive=True,
            ),
        )
        return cls(client, settings.bucket)

    def ensure_bucket(self) -> None:
        """Create the bucket if missing (demo and tests; production creates it beforehand)."""
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _status(exc) != 404:  # noqa: PLR2004 - HTTP Not Found
                raise _translate(exc, f"bucket {self.bucket}") from exc
            self._call(lambda: self._s3.create_bucket(Bucket=self.bucket), f"bucket {self.bucket}")
        except BotoCoreError as exc:
            raise _translate(exc, f"bucket {self.bucket}") from exc

    def put_raw(self, hub_id: str, batch_id: UUID, data: bytes) -> str:
        """Archive a verified sealed batch under its deterministic key; idempotent; return the key.

        The same bytes again succeed; different bytes under the same batch id raise ArchiveConflict.
        """
        return self._put_once(raw_key(hub_id, batch_id), data)

    def put_quarantine(self, hub_id: str | None, data: bytes, received_at: datetime) -> str:
        """Keep bytes that could not be stored (forged, undecodable, …) for inspection; the key."""
        return self._put_once(quarantine_key(hub_id, data, received_at), data)

    def get(self, key: str) -> bytes:
        """The object's bytes, checked against the SHA-256 recorded when it was written."""

        def read() -> bytes:
            obj = self._s3.get_object(Bucket=self.bucket, Key=key)
            if obj["ContentLength"] > _MAX_OBJECT:
                raise StorageError(f"{key} is {obj['ContentLength']} bytes, larger than any batch")
            body = bytes(obj["Body"].read())
            expected = obj.get("Metadata", {}).get(_SHA_META)
            if expected is not None and hashlib.sha256(body).hexdigest() != expected:
                raise StorageError(f"{key} does not match the checksum it was written with")
            return body

        data: bytes = self._call(read, key)
        return data

    def iter_raw(
        self, hub_id: str | None = None, since: date | None = None
    ) -> Iterator[ArchivedObject]:
        """Every raw batch (of one hub) whose key date is on or after `since`, in key order."""
        paginator = self._s3.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=raw_prefix(hub_id))
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    if since is not None and _key_date(item["Key"]) < since:
                        continue
                    yield ArchivedObject(item["Key"], item["Size"], item["LastModified"])
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, raw_prefix(hub_id)) from exc

    def _put_once(self, key: str, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - S3 integrity header, not security
        try:
            self._s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentMD5=md5,
                IfNoneMatch="*",
                Metadata={_SHA_META: digest},
                ContentType="application/vnd.tecsa.sealed-batch",
            )
        except ClientError as exc:
            if _status(exc) != 412:  # noqa: PLR2004 - HTTP Precondition Failed: the key exists
                raise _translate(exc, key) from exc
            existing = self._call(lambda: self._s3.head_object(Bucket=self.bucket, Key=key), key)
            if existing.get("Metadata", {}).get(_SHA_META) != digest:
                raise ArchiveConflict(
                    f"{key} already holds different bytes; the archive is never overwritten",
                    key=key,
                ) from None
        except BotoCoreError as exc:
            raise _translate(exc, key) from exc
        return key

    def _call(self, fn: Any, what: str) -> Any:  # noqa: ANN401 - passes boto3's untyped results through
        try:
            return fn()
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, what) from exc


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _translate(exc: Exception, what: str) -> StorageError:
    if isinstance(exc, ClientError):
        status = _status(exc)
        code = exc.response.get("Error", {}).get("Code", "?")
        if status >= 500 or status in (408, 429):  # noqa: PLR2004 - server-side or throttling: retry
            return StorageUnavailable(f"object store error on {what}: {code} (HTTP {status})")
        return StorageError(f"object store refused {what}: {code} (HTTP {status})")
    return StorageUnavailable(f"object store unreachable for {what}: {exc}")


def _key_date(key: str) -> date:
    """The date in a raw key (`raw/{hub}/{yyyy}/{mm}/{dd}/{batch_id}`); date.min if malformed."""
    parts = key.split("/")
    try:
        return date(int(parts[2]), int(parts[3]), int(parts[4]))
    except (IndexError, ValueError):
        return date.min


def _secret(value: Any) -> str | None:  # noqa: ANN401 - SecretStr or None
    return None if value is None else str(value.get_secret_value())


def utcnow() -> datetime:
    """The current time in UTC (the I/O shell owns the clock)."""
    return datetime.now(UTC)
