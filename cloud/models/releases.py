"""Model releases in the cloud: build, sign, archive write-once, record, roll out.

A release is archived in S3 under `models/<version>/release` and recorded (with its rollouts)
in PostgreSQL.

An artifact directory (cloud/models/artifacts/<version>/) holds the int8 model, the float model
and `manifest.json`. The release carries only the int8 model (what hubs run) and a manifest made
from the artifact's: `version`; `metrics` (numbers); `training_data_digest`; the feature spec
version (`feature_version` or `feature_spec`); self-test vectors (`self_test`: `tolerance` and
`vectors` of `inputs` (normalised model inputs), `probability` and optional `band`); optional
`band_thresholds`. The artifact's manifest is also carried verbatim (`model_manifest`) for the
hub's runtime (normalisation). See docs/models/rollout.md.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import os
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from cloud.commands.publisher import publish_commands
from cloud.db.commands import mark_published, record_commands, target_hubs
from cloud.db.connection import translated
from cloud.errors import CloudError
from cloud.storage.archive import Archive
from cloud.storage.errors import ArchiveConflict, StorageError, StorageUnavailable
from wire.commands import CommandKind, ModelReleaseData, new_command, sign_command
from wire.errors import WireError
from wire.keys import key_id
from wire.releases import (
    MAX_RELEASE,
    ReleaseManifest,
    SelfTest,
    open_release,
    seal_release,
)
from wire.topics import cmd_topic

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    import psycopg
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from cloud.config import MqttSettings, S3Settings

MANIFEST_FILE = "manifest.json"
_INT8_NAMES = ("model_int8.tflite", "int8.tflite", "triage_int8.tflite")
_MAX_MANIFEST_FILE = 1024 * 1024
RELEASE_COMMAND_LIFETIME = timedelta(days=7)
"""How long a hub accepts a `model_release` command (then a new rollout is needed)."""


class ArtifactError(CloudError):
    """The artifact directory cannot make a release; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class PublishedRelease:
    """A release as the registry knows it."""

    version: str
    created_at: datetime
    published_at: datetime
    artifact_sha256: str
    release_sha256: str
    size: int
    s3_key: str
    signing_key: str
    feature_spec: str
    training_data_digest: str
    metrics: dict[str, float]


def release_key(version: str) -> str:
    """The S3 key of a release."""
    return f"models/{version}/release"


def build_release(artifact_dir: Path, key: Ed25519PrivateKey, *, now: datetime) -> bytes:
    """Sign a release of the int8 model in `artifact_dir`, described by its manifest.json."""
    info = _read_manifest(artifact_dir)
    artifact_path = _int8_file(artifact_dir, info)
    artifact = artifact_path.read_bytes()
    if len(artifact) > MAX_RELEASE:
        raise ArtifactError(f"{artifact_path} is {len(artifact)} bytes, over {MAX_RELEASE}")
    try:
        manifest = ReleaseManifest(
            version=_required(info, "version"),
            created_at=now,
            key=key_id(key),
            artifact_sha256=hashlib.sha256(artifact).hexdigest(),
            artifact_size=len(artifact),
            metrics=_numbers(info.get("metrics", {})),
            training_data_digest=_required(info, "training_data_digest"),
            feature_spec=str(_first(info, "feature_spec", "feature_version")),
            band_thresholds=info.get("band_thresholds"),
            self_test=SelfTest.model_validate(_required(info, "self_test")),
            model_manifest=info,
        )
        return seal_release(manifest, artifact, key)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(map(str, err["loc"]))
        raise ArtifactError(f"{artifact_dir / MANIFEST_FILE}: {where}: {err['msg']}") from None
    except (ValueError, WireError) as exc:
        raise ArtifactError(f"{artifact_dir}: {exc}") from None


class ReleaseArchive:
    """Releases in the archive bucket, written once under `models/<version>/release`."""

    def __init__(self, client: Any, bucket: str) -> None:  # noqa: ANN401 - boto3 client, untyped
        self._s3 = client
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: S3Settings) -> ReleaseArchive:
        """The same client settings as the batch archive."""
        archive = Archive.from_settings(settings)
        return cls(archive._s3, archive.bucket)  # noqa: SLF001 - one client config for the bucket

    def put(self, version: str, sealed: bytes) -> str:
        """Store a release once; the same bytes again succeed, different bytes conflict."""
        key = release_key(version)
        digest = hashlib.sha256(sealed).hexdigest()
        md5 = base64.b64encode(hashlib.md5(sealed).digest()).decode()  # noqa: S324 - S3 integrity header
        try:
            self._s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=sealed,
                ContentMD5=md5,
                IfNoneMatch="*",
                Metadata={"sha256": digest},
                ContentType="application/vnd.tecsa.model-release",
            )
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 412:  # noqa: PLR2004 - exists
                raise StorageUnavailable(f"cannot store {key}: {exc}") from exc
            head = self._s3.head_object(Bucket=self.bucket, Key=key)
            if head.get("Metadata", {}).get("sha256") != digest:
                raise ArchiveConflict(
                    f"{key} already holds a different release; a version is never reused",
                    key=key,
                ) from None
        except BotoCoreError as exc:
            raise StorageUnavailable(f"cannot store {key}: {exc}") from exc
        return key

    def get(self, version: str) -> bytes:
        """A stored release, checked against the SHA-256 it was written with."""
        key = release_key(version)
        try:
            obj = self._s3.get_object(Bucket=self.bucket, Key=key)
            if obj["ContentLength"] > MAX_RELEASE:
                raise StorageError(f"{key} is larger than any release")
            body = bytes(obj["Body"].read())
        except ClientError as exc:
            raise StorageError(f"cannot read {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"cannot read {key}: {exc}") from exc
        if hashlib.sha256(body).hexdigest() != obj.get("Metadata", {}).get("sha256"):
            raise StorageError(f"{key} does not match the checksum it was written with")
        return body


def publish(
    conn: psycopg.Connection[Any],
    archive: ReleaseArchive,
    artifact_dir: Path,
    key: Ed25519PrivateKey,
    *,
    now: datetime,
) -> PublishedRelease:
    """Build, sign, archive (write-once) and record a release; idempotent per version.

    Publishing a version that is already recorded returns the recorded release untouched (its
    bytes in S3 are the truth); the artifact must then be the same model.
    """
    sealed = build_release(artifact_dir, key, now=now)
    release = open_release(sealed, cloud_key=key.public_key())
    existing = get_release(conn, release.version)
    if existing is not None:
        if existing.artifact_sha256 != release.manifest.artifact_sha256:
            raise ArtifactError(
                f"version {release.version} was published with another model; "
                "give the new model a new version"
            )
        return existing
    s3_key = archive.put(release.version, sealed)
    m = release.manifest
    with translated(), conn.transaction():
        conn.execute(
            "INSERT INTO model_releases (version, created_at, published_at, artifact_sha256,"
            " release_sha256, size, s3_key, signing_key, feature_spec, training_data_digest,"
            " metrics) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (version) DO NOTHING",
            (
                m.version,
                m.created_at,
                now,
                m.artifact_sha256,
                hashlib.sha256(sealed).hexdigest(),
                len(sealed),
                s3_key,
                m.key,
                m.feature_spec,
                m.training_data_digest,
                Jsonb(m.metrics),
            ),
        )
    recorded = get_release(conn, m.version)
    if recorded is None:  # pragma: no cover - inserted above or by a concurrent publisher
        raise CloudError(f"release {m.version} vanished after it was recorded")
    return recorded


def get_release(conn: psycopg.Connection[Any], version: str) -> PublishedRelease | None:
    """One recorded release, or None."""
    with translated():
        row = conn.execute(_SELECT + " WHERE version = %s", (version,)).fetchone()
    return _release(row) if row else None


def list_releases(conn: psycopg.Connection[Any]) -> list[PublishedRelease]:
    """Every recorded release, most recently published first."""
    with translated():
        rows = conn.execute(_SELECT + " ORDER BY published_at DESC, version DESC").fetchall()
    return [_release(r) for r in rows]


def record_rollout(
    conn: psycopg.Connection[Any],
    version: str,
    *,
    hub_id: str | None,
    via: str,
    now: datetime,
) -> None:
    """Note that `version` was sent to `hub_id` (None: every hub) by `via` (command or file)."""
    with translated(), conn.transaction():
        conn.execute(
            "INSERT INTO model_rollouts (version, hub_id, via, requested_at)"
            " VALUES (%s, %s, %s, %s)",
            (version, hub_id, via, now),
        )


def push_release(
    conn: psycopg.Connection[Any],
    sealed: bytes,
    *,
    key: Ed25519PrivateKey,
    mqtt: MqttSettings,
    hub_id: str | None,
    now: datetime,
) -> list[str]:
    """Send a release as a signed `model_release` command to `hub_id` (or every active hub).

    Commands are recorded before they are published and marked published once the broker took
    them; raises `BrokerUnavailable` (the commands stay recorded) when it cannot. The hubs it
    went to.
    """
    version = open_release(sealed, cloud_key=key.public_key()).version
    hubs = target_hubs(conn, hub_id)
    data = ModelReleaseData(release=base64.b64encode(sealed).decode("ascii"))
    commands = [
        new_command(
            CommandKind.MODEL_RELEASE,
            data,
            hub_id=hub,
            now=now,
            lifetime=RELEASE_COMMAND_LIFETIME,
            rand=os.urandom(10),
        )
        for hub in hubs
    ]
    signed = [(cmd_topic(c.hub_id), sign_command(c, key)) for c in commands]
    record_commands(
        conn,
        [(c.id, c.hub_id, c.kind.value, None, c.issued_at, c.expires_at) for c in commands],
    )
    if signed:
        asyncio.run(publish_commands(mqtt, signed))
        mark_published(conn, [c.id for c in commands], at=now)
    for hub in hubs:
        record_rollout(conn, version, hub_id=hub, via="command", now=now)
    return hubs


_SELECT = (
    "SELECT version, created_at, published_at, artifact_sha256, release_sha256, size, s3_key,"
    " signing_key, feature_spec, training_data_digest, metrics FROM model_releases"
)


def _release(row: tuple[Any, ...]) -> PublishedRelease:
    names = [f.name for f in fields(PublishedRelease)]
    values = dict(zip(names, row, strict=True))
    values["metrics"] = dict(values["metrics"])
    return PublishedRelease(**values)


def _read_manifest(artifact_dir: Path) -> dict[str, Any]:
    path = artifact_dir / MANIFEST_FILE
    try:
        if path.stat().st_size > _MAX_MANIFEST_FILE:
            raise ArtifactError(f"{path} is too large for a manifest")
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{artifact_dir} has no {MANIFEST_FILE}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is not a readable JSON manifest: {exc}") from None
    if not isinstance(info, dict):
        raise ArtifactError(f"{path} is not a JSON object")
    return info


def _int8_file(artifact_dir: Path, info: dict[str, Any]) -> Path:
    named = info.get("int8") or (info.get("artifacts") or {}).get("int8")
    candidates = [artifact_dir / str(named)] if named else []
    candidates += [artifact_dir / n for n in _INT8_NAMES]
    candidates += sorted(artifact_dir.glob("*int8*.tflite"))
    for path in candidates:
        if path.is_file() and path.resolve().parent == artifact_dir.resolve():
            return path
    raise ArtifactError(f"{artifact_dir} has no int8 model (*int8*.tflite)")


def _required(info: dict[str, Any], name: str) -> Any:  # noqa: ANN401 - JSON value
    if name not in info:
        raise ArtifactError(f"{MANIFEST_FILE} has no {name!r}")
    return info[name]


def _first(info: dict[str, Any], *names: str) -> Any:  # noqa: ANN401 - JSON value
    for name in names:
        if name in info:
            return info[name]
    raise ArtifactError(f"{MANIFEST_FILE} has none of {', '.join(names)}")


def _numbers(metrics: Any) -> dict[str, float]:  # noqa: ANN401 - JSON value
    """The numeric metrics, flattened with dots ({"auroc": {"model": 0.9}} -> "auroc.model")."""
    out: dict[str, float] = {}

    def walk(prefix: str, value: Any) -> None:  # noqa: ANN401 - JSON value
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and len(out) < 64  # noqa: PLR2004 - the manifest's cap
        ):
            out[prefix[:64]] = float(value)

    walk("", metrics)
    return out
