-- Signed triage model releases (cloud/models/releases.py): the bytes live write-once in S3
-- under s3_key; this table is the registry `tecsa-cloud models list` reads.
CREATE TABLE model_releases (
    version              text        PRIMARY KEY CHECK (version ~ '^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$'),
    created_at           timestamptz NOT NULL,
    published_at         timestamptz NOT NULL,
    artifact_sha256      text        NOT NULL CHECK (artifact_sha256 ~ '^[0-9a-f]{64}$'),
    release_sha256       text        NOT NULL CHECK (release_sha256 ~ '^[0-9a-f]{64}$'),
    size                 integer     NOT NULL CHECK (size > 0),
    s3_key               text        NOT NULL UNIQUE,
    signing_key          text        NOT NULL CHECK (signing_key ~ '^[0-9a-f]{16}$'),
    feature_spec         text        NOT NULL,
    training_data_digest text        NOT NULL,
    metrics              jsonb       NOT NULL DEFAULT '{}'
);
-- Every rollout request: to one hub, or to all (hub_id NULL), by command or as a file.
CREATE TABLE model_rollouts (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version      text        NOT NULL REFERENCES model_releases (version),
    hub_id       text,
    via          text        NOT NULL CHECK (via IN ('command', 'file')),
    requested_at timestamptz NOT NULL
);
CREATE INDEX model_rollouts_version ON model_rollouts (version, requested_at DESC);
