-- Automatic re-sends of commands to hubs whose up/status shows they missed one
-- (cloud/commands/sync.py, docs/commands.md "Catching up"). One row per hub and kind: the last
-- time an ingestor claimed the right to re-send. Claiming is one atomic upsert whose WHERE only
-- matches once the cooldown has passed, so with N ingestors exactly one of them re-sends.
CREATE TABLE command_pushes (
    hub_id    text        NOT NULL REFERENCES hubs (hub_id),
    kind      text        NOT NULL CHECK (kind IN ('revocations', 'plans', 'model_release')),
    pushed_at timestamptz NOT NULL,
    pushes    bigint      NOT NULL DEFAULT 1 CHECK (pushes > 0),
    PRIMARY KEY (hub_id, kind)
);
