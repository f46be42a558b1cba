-- 0001: the ingestion schema (issue 4). See docs/cloud-db.md for the contracts behind it.
--
-- Applied by cloud/db/schema.py inside one transaction, under an advisory lock, and recorded in
-- schema_migrations with this file's sha256: never edit it once released; add 0002_... instead.
--
-- Conventions: times are timestamptz (UTC instants) except device_time, which is the device's
-- own zone-less wall clock; ids made by hubs are UUIDs; identifiers from other systems are text.
-- Item tables carry hub_id and batch_id for provenance without foreign keys: a per-row foreign
-- key check would cost more than the COPY itself, and batches(batch_id) is written in the same
-- transaction as the items, so the reference holds by construction.

-- Hubs and their public keys. A hub id is a DNS label (docs/wire.md section 1), so it can never
-- smuggle a wildcard or a path into a topic or an S3 key.
CREATE TABLE hubs (
    hub_id          text PRIMARY KEY
                    CHECK (hub_id ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'),
    identity_key    bytea NOT NULL UNIQUE CHECK (length(identity_key) = 32),  -- Ed25519, raw
    identity_key_id text NOT NULL CHECK (identity_key_id ~ '^[0-9a-f]{16}$'),  -- as in headers
    exchange_key    bytea CHECK (length(exchange_key) = 32),                   -- X25519, raw
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    revoke_reason   text,
    note            text,
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);

-- One row per batch the cloud has decided on. The primary key is what makes a republished batch
-- a duplicate: the loader claims the batch_id first (INSERT ... ON CONFLICT DO NOTHING), so two
-- ingestors racing on one batch serialise on this row and only one loads the items.
-- 'rejected' rows exist only for batches whose signature verified but whose content did not
-- validate: an unauthenticated batch_id must never be recorded, or a forger could make the real
-- batch look like a duplicate.
CREATE TABLE batches (
    batch_id                   uuid PRIMARY KEY,
    hub_id                     text NOT NULL REFERENCES hubs (hub_id),
    seq                        bigint NOT NULL CHECK (seq >= 0),
    created_at                 timestamptz NOT NULL,   -- the hub's clock, from the header
    received_at                timestamptz NOT NULL,   -- the ingestor's clock
    stored_at                  timestamptz NOT NULL DEFAULT now(),
    status                     text NOT NULL CHECK (status IN ('stored', 'rejected')),
    reason                     text,                   -- why it was rejected
    priority                   text NOT NULL CHECK (priority IN ('alert', 'routine', 'bulk')),
    hub_key                    text NOT NULL,          -- key id that signed it
    cloud_key                  text NOT NULL,          -- key id it was sealed to
    s3_key                     text NOT NULL,          -- raw/{hub_id}/{yyyy}/{mm}/{dd}/{batch_id}
    size                       integer CHECK (size >= 0),  -- sealed bytes, when known
    -- what the header announced
    count_readings             integer NOT NULL CHECK (count_readings >= 0),
    count_medical_records      integer NOT NULL CHECK (count_medical_records >= 0),
    count_triage_results       integer NOT NULL CHECK (count_triage_results >= 0),
    count_audit_events         integer NOT NULL CHECK (count_audit_events >= 0),
    -- what loading it did (inserted + duplicate = count; records also count conflicts)
    readings_inserted          integer NOT NULL DEFAULT 0,
    readings_duplicate         integer NOT NULL DEFAULT 0,
    medical_records_inserted   integer NOT NULL DEFAULT 0,
    medical_records_duplicate  integer NOT NULL DEFAULT 0,
    medical_records_conflict   integer NOT NULL DEFAULT 0,
    triage_results_inserted    integer NOT NULL DEFAULT 0,
    triage_results_duplicate   integer NOT NULL DEFAULT 0,
    audit_events_inserted      integer NOT NULL DEFAULT 0,
    audit_events_duplicate     integer NOT NULL DEFAULT 0,
    CHECK ((status = 'rejected') = (reason IS NOT NULL))
);
-- "What did hub X send last", gaps in a hub's sequence. Not unique: a hub restored from a backup
-- may reuse a seq with a new batch_id, and refusing that batch would lose its data.
CREATE INDEX batches_hub_seq ON batches (hub_id, seq);

-- Readings, partitioned by month of measured_at so that old months can be detached, archived or
-- dropped whole, and so that per-patient time queries touch few partitions.
--
-- measured_at is the partition key and is never null: the hub's estimate of the measuring time
-- (measured_at_reported) or, when the device clock is unknown, the hub's receive time. Both
-- original values are kept; the CHECK keeps the rule in the database.
--
-- There is deliberately no DEFAULT partition: a row outside every partition must fail loudly,
-- never be swallowed where nobody looks. The loader creates the months of each batch before
-- loading it (cloud/db/partitions.py), and `tecsa-cloud db upgrade` creates months ahead.
--
-- The primary key must contain the partition key, so (id, measured_at) is the idempotency key:
-- a hub never changes a stored reading's measured_at or received_at (docs/cloud-db.md).
CREATE TABLE readings (
    id                   uuid NOT NULL,            -- UUIDv7 made by the hub
    measured_at          timestamptz NOT NULL,     -- partition key, see above
    measured_at_reported timestamptz,              -- the wire's measured_at (null: clock unknown)
    received_at          timestamptz NOT NULL,     -- when the hub received it
    device_time          timestamp,                -- the device's wall clock, no zone, as sent
    device_id            text NOT NULL,
    kind                 text NOT NULL,            -- blood_pressure, spo2, ...
    components           jsonb NOT NULL,           -- {name: {"value": number|null, "unit": UCUM}}
    quality              text[] NOT NULL DEFAULT '{}',
    patient_id           text,
    encounter_id         uuid,
    device_seq           bigint CHECK (device_seq BETWEEN 0 AND 4294967295),
    hub_id               text NOT NULL,
    batch_id             uuid NOT NULL,            -- the batch that first delivered it
    PRIMARY KEY (id, measured_at),
    CHECK (measured_at = coalesce(measured_at_reported, received_at))
) PARTITION BY RANGE (measured_at);
-- A patient's recent vitals, newest first: the API's main query. Created on every partition.
CREATE INDEX readings_patient_time ON readings (patient_id, measured_at DESC);

-- Medical records: one row per revision. (id, revision) identifies a revision; the same pair
-- with another content_hash is a conflict (two phones edited the same revision): the first one
-- stored stays here with has_conflict set, later different versions go to record_conflicts, and
-- nothing is ever overwritten or lost.
CREATE TABLE medical_records (
    id            uuid NOT NULL,
    revision      integer NOT NULL CHECK (revision BETWEEN 1 AND 1000000),
    updated_at    timestamptz NOT NULL,
    patient_id    text NOT NULL,
    agent_id      text NOT NULL,
    type          text NOT NULL,
    payload       jsonb NOT NULL,
    content_hash  text NOT NULL CHECK (content_hash ~ '^sha256:[0-9a-f]{64}$'),
    flags         text[] NOT NULL DEFAULT '{}',   -- as sent by the hub, e.g. {conflict}
    has_conflict  boolean NOT NULL DEFAULT false, -- set by the cloud: see record_conflicts
    hub_id        text NOT NULL,
    batch_id      uuid NOT NULL,
    PRIMARY KEY (id, revision)
);
CREATE INDEX medical_records_patient ON medical_records (patient_id, updated_at DESC);
-- For reviewers: the conflicted records, without scanning the table.
CREATE INDEX medical_records_conflicted ON medical_records (id) WHERE has_conflict;

-- Later versions of a record revision whose content differs from the stored one, kept for review.
CREATE TABLE record_conflicts (
    id            uuid NOT NULL,
    revision      integer NOT NULL,
    content_hash  text NOT NULL,
    updated_at    timestamptz NOT NULL,
    patient_id    text NOT NULL,
    agent_id      text NOT NULL,
    type          text NOT NULL,
    payload       jsonb NOT NULL,
    flags         text[] NOT NULL DEFAULT '{}',
    hub_id        text NOT NULL,
    batch_id      uuid NOT NULL,
    detected_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz,                    -- set by the review workflow (later)
    PRIMARY KEY (id, revision, content_hash),
    FOREIGN KEY (id, revision) REFERENCES medical_records (id, revision)
);

-- The hub's triage of a patient's vitals (NEWS2 plus the edge model).
CREATE TABLE triage_results (
    id               uuid PRIMARY KEY,
    patient_id       text,
    reading_ids      uuid[] NOT NULL,
    computed_at      timestamptz NOT NULL,
    band             text NOT NULL CHECK (band IN ('low', 'low_medium', 'medium', 'high')),
    score            double precision NOT NULL,
    news2_score      smallint CHECK (news2_score BETWEEN 0 AND 20),
    news2_subscores  jsonb NOT NULL,
    complete         boolean NOT NULL,
    model_version    text NOT NULL,
    input_hash       text NOT NULL,
    hub_id           text NOT NULL,
    batch_id         uuid NOT NULL
);
CREATE INDEX triage_results_patient ON triage_results (patient_id, computed_at DESC);

-- What people and hubs did that must be traceable (pairing, export, configuration changes).
CREATE TABLE audit_events (
    id        uuid PRIMARY KEY,
    at        timestamptz NOT NULL,
    actor     text NOT NULL,
    action    text NOT NULL,
    detail    jsonb NOT NULL,
    hub_id    text NOT NULL,
    batch_id  uuid NOT NULL
);
CREATE INDEX audit_events_hub_time ON audit_events (hub_id, at);

-- Batches that could not be verified, opened or validated. The sealed bytes are in S3 under
-- s3_key; hub_id and batch_id are what the (possibly forged or undecodable) header claimed, null
-- when even that could not be read, so nothing here is trusted or referenced.
CREATE TABLE quarantine (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    hub_id       text,
    batch_id     uuid,
    reason       text NOT NULL,
    s3_key       text NOT NULL,                  -- the archived bytes (the evidence)
    size         integer NOT NULL CHECK (size >= 0)
);
CREATE INDEX quarantine_received ON quarantine (received_at);
