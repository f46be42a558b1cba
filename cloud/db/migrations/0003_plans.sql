-- Signed commands to hubs on down/cmd (wire/commands.py; cloud/commands, cloud/db/commands.py).
-- Snapshot versions (revocation lists, plans) come from one sequence: every snapshot sent is
-- newer than every one sent before, so a hub keeps the newest and ignores older ones.
CREATE SEQUENCE command_versions AS bigint MINVALUE 1 START 1;

-- Every command signed for a hub; published_at is set once the broker accepted it (QoS 1).
CREATE TABLE hub_commands (
    command_id   uuid        PRIMARY KEY,
    hub_id       text        NOT NULL REFERENCES hubs (hub_id),
    kind         text        NOT NULL CHECK (kind IN ('revocations', 'plans', 'model_release')),
    version      bigint      CHECK (version >= 0),
    issued_at    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL CHECK (expires_at > issued_at),
    published_at timestamptz
);
CREATE INDEX hub_commands_hub ON hub_commands (hub_id, kind, issued_at DESC);

-- The plans each hub was last sent (a full snapshot, replaced whole at each publication).
CREATE TABLE hub_plans (
    hub_id     text        PRIMARY KEY REFERENCES hubs (hub_id),
    version    bigint      NOT NULL CHECK (version >= 0),
    plans      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL
);
