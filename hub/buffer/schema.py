"""The buffer's SQLite schema as ordered migrations, and how its connections are opened.

Each migration runs in one transaction together with the `PRAGMA user_version` bump, so a file is
always at exactly one known version. Never edit a released migration: append a new one.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from hub.buffer.errors import BufferNotFound, NotABuffer, SchemaTooNew, SchemaTooOld, translate

if TYPE_CHECKING:
    from pathlib import Path

    from hub.buffer.config import BufferConfig

APPLICATION_ID = 0x54454353  # "TECS": marks the file as a Tecsa hub buffer (PRAGMA application_id)

_V1 = (
    f"PRAGMA application_id = {APPLICATION_ID}",
    # One row per reading. `seq` orders rows cheaply; `id` and `dedupe_key` make inserts idempotent.
    # Times are fixed-width UTC text (values.to_db_time), so text order is time order.
    """
    CREATE TABLE readings (
        seq          INTEGER PRIMARY KEY,
        id           TEXT    NOT NULL UNIQUE,
        dedupe_key   TEXT    NOT NULL UNIQUE CHECK (length(dedupe_key) BETWEEN 1 AND 512),
        device_id    TEXT    NOT NULL,
        kind         TEXT    NOT NULL,
        patient_id   TEXT,
        received_at  TEXT    NOT NULL,
        measured_at  TEXT,
        priority     INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 9),
        nbytes       INTEGER NOT NULL CHECK (nbytes > 0),
        json         TEXT    NOT NULL,
        batch_id     TEXT,
        delivered_at TEXT,
        CHECK (delivered_at IS NULL OR batch_id IS NOT NULL)
    )
    """,
    # What the uplink reads next: only rows neither delivered nor in a batch, in send order.
    """
    CREATE INDEX readings_pending ON readings (priority, seq)
        WHERE delivered_at IS NULL AND batch_id IS NULL
    """,
    # Rows of batches in flight, to mark them delivered or rebuild the batch after a restart.
    """
    CREATE INDEX readings_in_flight ON readings (batch_id)
        WHERE delivered_at IS NULL AND batch_id IS NOT NULL
    """,
    # Covers `stats()` (one scan of this index, not of the JSON) and pruning by delivery time.
    "CREATE INDEX readings_state ON readings (kind, delivered_at, received_at, nbytes)",
    "CREATE INDEX readings_delivered ON readings (delivered_at) WHERE delivered_at IS NOT NULL",
    """
    CREATE TABLE devices (
        address        TEXT PRIMARY KEY CHECK (length(address) BETWEEN 1 AND 64),
        profile        TEXT NOT NULL,
        name           TEXT,
        bond_state     TEXT NOT NULL DEFAULT 'unknown'
                            CHECK (bond_state IN ('unknown', 'none', 'bonded')),
        last_racp_seq  INTEGER CHECK (last_racp_seq >= 0),
        clock_offset_s REAL,
        battery_pct    INTEGER CHECK (battery_pct BETWEEN 0 AND 100),
        first_seen     TEXT NOT NULL,
        last_seen      TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    # No foreign key to devices: a phone may bind a device before the hub has ever seen it.
    """
    CREATE TABLE encounters (
        id             TEXT PRIMARY KEY,
        device_address TEXT NOT NULL,
        patient_id     TEXT NOT NULL,
        started_at     TEXT NOT NULL,
        ended_at       TEXT CHECK (ended_at IS NULL OR ended_at > started_at)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX encounters_device ON encounters (device_address, started_at)",
    # The writer checks overlaps first and names the culprit; these triggers are the second line.
    """
    CREATE TRIGGER encounters_no_overlap_insert BEFORE INSERT ON encounters
    WHEN EXISTS (
        SELECT 1 FROM encounters AS e
        WHERE e.device_address = NEW.device_address
          AND (NEW.ended_at IS NULL OR e.started_at < NEW.ended_at)
          AND (e.ended_at IS NULL OR e.ended_at > NEW.started_at)
    )
    BEGIN SELECT RAISE(ABORT, 'encounter overlaps another encounter of the device'); END
    """,
    """
    CREATE TRIGGER encounters_no_overlap_update BEFORE UPDATE ON encounters
    WHEN EXISTS (
        SELECT 1 FROM encounters AS e
        WHERE e.device_address = NEW.device_address AND e.id <> OLD.id
          AND (NEW.ended_at IS NULL OR e.started_at < NEW.ended_at)
          AND (e.ended_at IS NULL OR e.ended_at > NEW.started_at)
    )
    BEGIN SELECT RAISE(ABORT, 'encounter overlaps another encounter of the device'); END
    """,
    # Facts the daemon records for read-only tools (the cap it runs with, for `buffer stats`).
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
)

_V2 = (
    # The uplink's outbox: one row per sealed batch, recorded in the same transaction that assigns
    # its readings, so after a crash either the batch exists with its rows or neither does.
    # `sealed` holds the exact bytes sent: a republished batch must be byte-identical (the cloud's
    # archive is write-once per batch_id). It is dropped once the cloud acknowledged the batch.
    # `seq` is the per-hub monotonic sequence of the envelope header (docs/wire.md section 3.1),
    # allocated from `meta` (`outbox_next_seq`) so it is never reused, even after pruning.
    """
    CREATE TABLE outbox (
        seq          INTEGER PRIMARY KEY CHECK (seq >= 0),
        batch_id     TEXT    NOT NULL UNIQUE,
        priority     INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 9),
        created_at   TEXT    NOT NULL,
        sealed       BLOB,
        readings     INTEGER NOT NULL CHECK (readings >= 0),
        state        TEXT    NOT NULL DEFAULT 'in_flight'
                             CHECK (state IN ('in_flight', 'acked', 'rejected')),
        attempts     INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        last_sent_at TEXT,
        acked_at     TEXT,
        ack_status   TEXT CHECK (ack_status IN ('stored', 'duplicate', 'rejected')),
        ack_reason   TEXT,
        CHECK (state <> 'in_flight' OR sealed IS NOT NULL),
        CHECK ((state = 'in_flight') = (ack_status IS NULL))
    )
    """,
    # What the uplink republishes after a restart, oldest first; small (bounded by the window).
    "CREATE INDEX outbox_in_flight ON outbox (seq) WHERE state = 'in_flight'",
    "CREATE INDEX outbox_rejected ON outbox (seq) WHERE state = 'rejected'",
    "CREATE INDEX outbox_acked ON outbox (acked_at) WHERE state = 'acked'",
)

_V3 = (
    # Delivery is recorded per batch, not per row: a reading is written once, its `batch_id` set
    # once when a batch takes it, and an ack updates one `batches` row instead of 500 readings
    # (each of those row rewrites dirtied the wide JSON pages and four index entries).
    # `lo`/`hi` bound the seqs of the batch's rows, so its rows are a rowid range scan away
    # without an index on batch_id. `readings`/`nbytes` count the rows the batch holds that were
    # not delivered before this migration.
    """
    CREATE TABLE batches (
        batch_id     TEXT    PRIMARY KEY,
        lo           INTEGER NOT NULL,
        hi           INTEGER NOT NULL CHECK (hi >= lo),
        readings     INTEGER NOT NULL CHECK (readings >= 0),
        nbytes       INTEGER NOT NULL CHECK (nbytes >= 0),
        delivered_at TEXT
    ) WITHOUT ROWID
    """,
    # v2 batches still waiting (in flight, rejected or assigned by hand): their undelivered rows.
    # Rows v2 delivered keep their own `delivered_at` (and `readings_delivered` for pruning).
    """
    INSERT INTO batches (batch_id, lo, hi, readings, nbytes)
    SELECT batch_id, min(seq), max(seq), count(*), sum(nbytes) FROM readings
    INDEXED BY readings_in_flight
    WHERE delivered_at IS NULL AND batch_id IS NOT NULL GROUP BY batch_id
    """,
    "CREATE INDEX batches_delivered ON batches (delivered_at) WHERE delivered_at IS NOT NULL",
    "CREATE INDEX batches_waiting ON batches (lo) WHERE delivered_at IS NULL",
    "DROP INDEX readings_in_flight",
    "DROP INDEX readings_state",
    "DROP INDEX readings_pending",
    "ALTER TABLE readings RENAME TO reading_rows",
    # What the uplink reads next, covering what `stats()` needs of the waiting rows.
    """
    CREATE INDEX readings_pending ON reading_rows (priority, seq, kind, received_at, nbytes)
        WHERE delivered_at IS NULL AND batch_id IS NULL
    """,
    # Delivered readings per kind, kept at each ack and by pruning, so `stats()` adds them to
    # the unsent counts it scans and never reads delivered rows. Inserts pay nothing for it.
    "CREATE TABLE delivered_kinds (kind TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID",
    """
    INSERT INTO delivered_kinds (kind, n)
    SELECT kind, count(*) FROM reading_rows INDEXED BY readings_delivered
    WHERE delivered_at IS NOT NULL GROUP BY kind
    """,
    # Only delivered rows are ever deleted (pruning): each leaves the count.
    """
    CREATE TRIGGER reading_rows_pruned AFTER DELETE ON reading_rows BEGIN
        UPDATE delivered_kinds SET n = n - 1 WHERE kind = OLD.kind;
    END
    """,
    # The old shape, for read-only tools and SQL written against v1/v2 (`SELECT ... FROM readings
    # WHERE delivered_at IS NOT NULL` still means "acknowledged by the cloud").
    """
    CREATE VIEW readings AS
    SELECT r.seq, r.id, r.dedupe_key, r.device_id, r.kind, r.patient_id, r.received_at,
           r.measured_at, r.priority, r.nbytes, r.json, r.batch_id,
           coalesce(r.delivered_at, b.delivered_at) AS delivered_at
    FROM reading_rows AS r LEFT JOIN batches AS b ON b.batch_id = r.batch_id
    """,
)

_V4 = (
    # Medical records from phones (bulk-sync). The key includes the content hash so that both
    # versions of a conflict are kept; `conflict` flags every version of an id/revision that has
    # another content, for a person to review. Unsent ones stay until the uplink carries them.
    """
    CREATE TABLE records (
        id           TEXT    NOT NULL,
        revision     INTEGER NOT NULL CHECK (revision >= 1),
        content_hash TEXT    NOT NULL,
        patient_id   TEXT    NOT NULL,
        agent_id     TEXT    NOT NULL,
        type         TEXT    NOT NULL,
        updated_at   TEXT    NOT NULL,
        received_at  TEXT    NOT NULL,
        conflict     INTEGER NOT NULL DEFAULT 0 CHECK (conflict IN (0, 1)),
        json         TEXT    NOT NULL,
        PRIMARY KEY (id, revision, content_hash)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX records_patient ON records (patient_id, updated_at)",
)

_V5: tuple[str, ...] = (
    # What the uplink carries besides readings: medical records and triage results. Both become
    # deliverable like readings: `batch_id` is set once, by the transaction that records the
    # outbox row, and delivery is the batch's `delivered_at` (one `batches` row per batch).
    # `nbytes` is the UTF-8 size of `json`, counted in the unsent backlog and the capacity cap.
    "ALTER TABLE records ADD COLUMN batch_id TEXT",
    "ALTER TABLE records ADD COLUMN nbytes INTEGER NOT NULL DEFAULT 0 CHECK (nbytes >= 0)",
    "UPDATE records SET nbytes = length(CAST(json AS BLOB))",
    # What the uplink reads next (records are routine) and a batch's records (ack, release, prune).
    "CREATE INDEX records_pending ON records (received_at, id) WHERE batch_id IS NULL",
    "CREATE INDEX records_batch ON records (batch_id) WHERE batch_id IS NOT NULL",
    # The hub's triage results: `json` is the wire TriageResult; `priority` 0 (alert) for the high
    # band, sent before routine data; `reading_ids` is the JSON array of the readings it scored.
    """
    CREATE TABLE triage (
        id            TEXT    PRIMARY KEY,
        patient_id    TEXT,
        computed_at   TEXT    NOT NULL,
        band          TEXT    NOT NULL CHECK (band IN ('low', 'low_medium', 'medium', 'high')),
        model_version TEXT    NOT NULL,
        priority      INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 9),
        nbytes        INTEGER NOT NULL CHECK (nbytes > 0),
        json          TEXT    NOT NULL,
        reading_ids   TEXT    NOT NULL,
        batch_id      TEXT
    )
    """,
    "CREATE INDEX triage_pending ON triage (priority, computed_at) WHERE batch_id IS NULL",
    "CREATE INDEX triage_batch ON triage (batch_id) WHERE batch_id IS NOT NULL",
    "CREATE INDEX triage_recent ON triage (computed_at)",
    "CREATE INDEX triage_patient ON triage (patient_id, computed_at)",
    # Which triage results scored a reading (`triage_for_readings`); pruned with the result.
    """
    CREATE TABLE triage_readings (
        reading_id TEXT NOT NULL,
        triage_id  TEXT NOT NULL,
        PRIMARY KEY (reading_id, triage_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX triage_readings_triage ON triage_readings (triage_id)",
    """
    CREATE TRIGGER triage_pruned AFTER DELETE ON triage BEGIN
        DELETE FROM triage_readings WHERE triage_id = OLD.id;
    END
    """,
    # A patient's readings (`readings_for_patient`, the phones' readings API): on patient_id
    # alone (rowid = seq follows it). Adding received_at to the key cost inserts ~30 % CPU in
    # bench_buffer; this costs ~5-20 %. The query sorts one patient's rows by time instead.
    "CREATE INDEX readings_patient ON reading_rows (patient_id) WHERE patient_id IS NOT NULL",
)

_V6: tuple[str, ...] = (
    # Plans the phones' API serves: the newest snapshot only, replaced whole in one transaction
    # (from the cloud on down/cmd, or `tecsa-hub plans import`). `json` is the wire.plans.Plan;
    # `ord` keeps the snapshot's order. Its version and source live in `meta`.
    """
    CREATE TABLE plans (
        id    TEXT    PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
        ord   INTEGER NOT NULL,
        json  TEXT    NOT NULL
    ) WITHOUT ROWID
    """,
    # Phones seen by zeroconf (`tecsa-hub phones`). Informative only: phones are authenticated
    # by their tokens, never by what they advertise. `present` is 0 once a phone withdrew.
    """
    CREATE TABLE phones (
        name       TEXT    PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 255),
        agent      TEXT,
        app        TEXT,
        first_seen TEXT    NOT NULL,
        last_seen  TEXT    NOT NULL,
        present    INTEGER NOT NULL CHECK (present IN (0, 1))
    ) WITHOUT ROWID
    """,
)

_V7: tuple[str, ...] = (
    # Signed commands from the cloud (down/cmd, wire.commands; hub/buffer/commands.py).
    # The revocation list in force: the newest snapshot, replaced whole. A token past its own
    # expiry needs no entry; rows are pruned when a new snapshot arrives.
    """
    CREATE TABLE revoked_tokens (
        jti        TEXT PRIMARY KEY CHECK (length(jti) BETWEEN 1 AND 128),
        expires_at TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    # Every command id judged, applied or not, kept until the command expires: a replayed id is
    # recognised (and ignored) for as long as it could verify.
    """
    CREATE TABLE commands (
        id          TEXT    PRIMARY KEY,
        kind        TEXT    NOT NULL,
        version     INTEGER,
        issued_at   TEXT    NOT NULL,
        expires_at  TEXT    NOT NULL,
        received_at TEXT    NOT NULL,
        outcome     TEXT    NOT NULL CHECK (outcome IN ('applied', 'stale', 'refused')),
        reason      TEXT
    ) WITHOUT ROWID
    """,
    "CREATE INDEX commands_expiry ON commands (expires_at)",
    # The snapshot version applied per kind (only versions that came from the cloud).
    """
    CREATE TABLE command_versions (
        kind       TEXT    PRIMARY KEY,
        version    INTEGER NOT NULL CHECK (version >= 0),
        command_id TEXT    NOT NULL,
        applied_at TEXT    NOT NULL
    ) WITHOUT ROWID
    """,
)

_V8 = (
    # Who bound the device (the agent id of the token that opened the encounter); NULL for
    # encounters opened before v8 or by the hub itself. An agent may end only their own.
    "ALTER TABLE encounters ADD COLUMN opened_by TEXT",
)

_V9 = (
    # Triage looks for records received since its last look (an agent's observations are
    # triaged when they arrive, not only with the patient's next reading).
    "CREATE INDEX records_received ON records (received_at)",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9)
"""Migration N (1-based) takes a file from `user_version` N-1 to N."""

SCHEMA_VERSION = len(MIGRATIONS)


def open_writer(config: BufferConfig) -> sqlite3.Connection:
    """The one read-write connection: WAL, the configured sync level, schema migrated to current."""
    path = config.path
    if not path.parent.is_dir():
        raise BufferNotFound(path.parent)
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves. The connection is handed to the
        # writer thread once set up, and only that thread uses it from then on.
        conn = sqlite3.connect(
            path,
            isolation_level=None,
            check_same_thread=False,
            timeout=config.busy_timeout.total_seconds(),
        )
    except sqlite3.Error as exc:
        raise translate(exc, f"opening {path}") from exc
    try:
        busy_ms = int(config.busy_timeout.total_seconds() * 1000)
        conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
        _require_wal(conn, path)
        conn.execute(f"PRAGMA synchronous = {config.synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        # Keep the -wal file from staying huge after a burst (bytes; 64 MiB).
        conn.execute("PRAGMA journal_size_limit = 67108864")
        migrate(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, f"opening {path}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def open_reader(path: Path, busy_timeout_s: float = 5.0) -> sqlite3.Connection:
    """A read-only connection (`mode=ro`) that can never take the writer's lock."""
    if not path.exists():
        raise BufferNotFound(path)
    uri = path.absolute().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=busy_timeout_s)
    except sqlite3.Error as exc:
        raise translate(exc, f"opening {path} read-only") from exc
    try:
        _require_buffer(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, f"opening {path} read-only") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _require_wal(conn: sqlite3.Connection, path: Path) -> None:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise NotABuffer(f"{path}: SQLite refused WAL mode (got {mode}); is it on a network FS?")


def _require_buffer(conn: sqlite3.Connection, path: Path) -> None:
    version = check_version(conn, path)
    if version == 0:
        raise NotABuffer(f"{path} is not a hub buffer yet (schema version 0)")
    if version < SCHEMA_VERSION:  # only the writer migrates; a reader must not guess old layouts
        raise SchemaTooOld(path, found=version, known=SCHEMA_VERSION)


def check_version(conn: sqlite3.Connection, path: Path) -> int:
    """The file's schema version; raises if it is newer than this release or not a buffer."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(path, found=version, known=SCHEMA_VERSION)
    if version > 0 and app_id != APPLICATION_ID:
        raise NotABuffer(f"{path} belongs to another application (application_id {app_id:#x})")
    if version == 0 and conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]:
        raise NotABuffer(f"{path} holds tables but no buffer schema version; refusing to adopt it")
    return version


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Apply the missing migrations, each in its own transaction; returns the final version."""
    version = check_version(conn, path)
    while version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = check_version(conn, path)
            if version < SCHEMA_VERSION:
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return version
