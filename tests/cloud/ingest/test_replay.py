"""Replay: PostgreSQL rebuilt from the S3 archive, identically and idempotently."""

from __future__ import annotations

from datetime import timedelta

import pytest
from ingest_support import (
    INGEST_KEY,
    T0,
    BatchMaker,
    archive_for,
    count,
    hub_key,
    readings_as_rows,
    register,
    unique_hub,
    write_keys,
)
from services import conninfo, create_database, drop_database
from typer import Typer
from typer.testing import CliRunner

from cloud.config import DatabaseSettings
from cloud.db import connect, open_pool, revoke_hub
from cloud.ingest.cli import replay_command
from cloud.ingest.pipeline import Verdict, process_message
from cloud.ingest.ports import StoragePorts
from cloud.ingest.replay import replay_archive
from wire.topics import batch_topic


@pytest.fixture
def new_db(migrated_template):
    name = create_database(template=migrated_template)
    yield conninfo(name)
    drop_database(name)


@pytest.fixture
def archived(db, s3_endpoint, s3_bucket):
    """Two hubs' batches ingested into `db` (and so archived), on three different days."""
    hubs = [unique_hub("a"), unique_hub("b")]
    makers = [BatchMaker(h, hub_key(10 + i), seed=i) for i, h in enumerate(hubs)]
    for m in makers:
        register(db, m.hub_id, m.key)
    pool = open_pool(DatabaseSettings(url=db, pool_max=1))
    ports = StoragePorts(pool, archive_for(s3_endpoint, s3_bucket))
    batches = []
    try:
        for day in range(3):
            for m in makers:
                b = m.make(12, at=T0 + timedelta(days=day, minutes=m.seq))
                outcome = process_message(
                    batch_topic(m.hub_id), b.data, T0, ports=ports, cloud_keys=INGEST_KEY
                )
                assert outcome.verdict is Verdict.STORED
                batches.append(b)
    finally:
        pool.close()
    return makers, batches


def _enroll(url, makers):
    for m in makers:
        register(url, m.hub_id, m.key)


def _replay(url, s3_endpoint, bucket, **filters):
    with connect(url) as conn:
        return replay_archive(
            archive_for(s3_endpoint, bucket), conn, cloud_keys=INGEST_KEY, **filters
        )


def test_replay_rebuilds_identical_rows_and_twice_doubles_nothing(
    db, new_db, s3_endpoint, s3_bucket, archived
):
    makers, _ = archived
    _enroll(new_db, makers)
    with connect(new_db) as conn:  # a revoked hub's archived batches were accepted: replayed
        revoke_hub(conn, makers[1].hub_id, reason="retired")

    first = _replay(new_db, s3_endpoint, s3_bucket)
    assert (first.scanned, first.stored, first.duplicate, first.failed) == (6, 6, 0, 0)
    assert first.readings_inserted == 72
    assert readings_as_rows(new_db) == readings_as_rows(db)

    second = _replay(new_db, s3_endpoint, s3_bucket)
    assert (second.scanned, second.stored, second.duplicate, second.failed) == (6, 0, 6, 0)
    assert count(new_db, "SELECT count(*) FROM readings") == 72
    assert count(new_db, "SELECT count(*) FROM batches") == 6


def test_replay_filters_by_hub_and_by_day(new_db, s3_endpoint, s3_bucket, archived):
    makers, _ = archived
    _enroll(new_db, makers)
    only_a = _replay(new_db, s3_endpoint, s3_bucket, hub_id=makers[0].hub_id)
    assert (only_a.scanned, only_a.stored) == (3, 3)
    assert count(new_db, "SELECT count(DISTINCT hub_id) FROM readings") == 1

    since = (T0 + timedelta(days=2)).date()
    recent = _replay(new_db, s3_endpoint, s3_bucket, since=since)
    assert (recent.scanned, recent.stored, recent.duplicate) == (2, 1, 1)
    assert count(new_db, "SELECT count(*) FROM batches") == 4


def test_replay_counts_what_it_cannot_replay_and_goes_on(new_db, s3_endpoint, s3_bucket, archived):
    makers, _ = archived
    _enroll(new_db, makers[:1])  # hub b never enrolled here
    summary = _replay(new_db, s3_endpoint, s3_bucket)
    assert (summary.scanned, summary.stored, summary.failed) == (6, 3, 3)
    assert all("not registered" in reason for _, reason in summary.failures)


def test_the_replay_command(new_db, s3_endpoint, s3_bucket, archived, tmp_path, monkeypatch):
    makers, _ = archived
    _enroll(new_db, makers)
    ingest, signing = write_keys(tmp_path)
    for name, value in {
        "TECSA_CLOUD_DATABASE__URL": new_db,
        "TECSA_CLOUD_S3__ENDPOINT_URL": s3_endpoint,
        "TECSA_CLOUD_S3__BUCKET": s3_bucket,
        "TECSA_CLOUD_S3__ACCESS_KEY_ID": "test",
        "TECSA_CLOUD_S3__SECRET_ACCESS_KEY": "test",
        "TECSA_CLOUD_KEYS__INGEST_KEY": str(ingest),
        "TECSA_CLOUD_KEYS__SIGNING_KEY": str(signing),
    }.items():
        monkeypatch.setenv(name, value)
    app = Typer()
    app.command("replay")(replay_command)
    app.command("noop")(lambda: None)  # more than one command: `replay` is a subcommand

    day = (T0 + timedelta(days=1)).date()
    result = CliRunner().invoke(app, ["replay", "--hub", makers[1].hub_id, "--since", str(day)])
    assert result.exit_code == 0, result.output
    assert "scanned=2 stored=2 duplicate=0 failed=0 readings_inserted=24" in result.stdout

    again = CliRunner().invoke(app, ["replay"])
    assert again.exit_code == 0, again.output
    assert "scanned=6 stored=4 duplicate=2 failed=0" in again.stdout

    bad = CliRunner().invoke(app, ["replay", "--since", "yesterday"])
    assert bad.exit_code == 2
