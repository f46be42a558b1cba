-- Tokens issued to health agents (wire/tokens.py): recorded so they can be listed and revoked.
-- Hubs verify tokens offline; the ids of revoked, unexpired tokens are pushed to them (down/cmd).
CREATE TABLE agent_tokens (
    token_id    text        PRIMARY KEY,
    agent_id    text        NOT NULL CHECK (length(agent_id) BETWEEN 1 AND 128),
    role        text        NOT NULL CHECK (role IN ('agent', 'supervisor', 'technician')),
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL CHECK (expires_at > issued_at),
    revoked_at  timestamptz,
    reason      text
);
CREATE INDEX agent_tokens_agent ON agent_tokens (agent_id, issued_at DESC);
-- The revocation list: revoked tokens that have not expired yet (expired ones need no list).
CREATE INDEX agent_tokens_revoked ON agent_tokens (expires_at) WHERE revoked_at IS NOT NULL;
