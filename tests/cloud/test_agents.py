"""Agents' tokens issued by the cloud, verified as a hub would, revoked, listed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from cloud.auth.cli import agents_app
from cloud.auth.tokens import issue_agent_token
from cloud.db import connect
from cloud.db.agents import agent_tokens, revoke_tokens, revoked_token_ids
from wire.keys import save_private_key
from wire.tokens import Role, TokenRevoked, verify

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(129, 161)))
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def test_issued_tokens_verify_offline_and_revocation_reaches_the_list(db):
    with connect(db) as conn:
        token = issue_agent_token(
            conn, KEY, agent_id="agent-17", role=Role.AGENT, now=NOW, lifetime=timedelta(hours=12)
        )
        claims = verify(token, key=KEY.public_key(), now=NOW + timedelta(hours=1))
        assert (claims.agent_id, claims.role) == ("agent-17", Role.AGENT)
        (issued,) = agent_tokens(conn, "agent-17")
        assert issued.token_id == claims.token_id
        assert revoked_token_ids(conn, now=NOW) == []
        assert revoke_tokens(conn, now=NOW, agent_id="agent-17", reason="phone lost") == [
            claims.token_id
        ]
        revoked = revoked_token_ids(conn, now=NOW)
        assert revoked == [claims.token_id]
        with pytest.raises(TokenRevoked):
            verify(token, key=KEY.public_key(), now=NOW, revoked=revoked)
        # Once expired, a revoked token needs no place on the list.
        assert revoked_token_ids(conn, now=NOW + timedelta(hours=13)) == []


def test_cli_issues_revokes_and_lists(db, tmp_path, monkeypatch):
    save_private_key(KEY, tmp_path / "signing.pem")
    monkeypatch.setenv("TECSA_CLOUD_KEYS__SIGNING_KEY", str(tmp_path / "signing.pem"))
    monkeypatch.setenv("TECSA_CLOUD_DATABASE__URL", db)
    runner = CliRunner()
    issued = runner.invoke(agents_app, ["token", "agent-18", "--role", "supervisor", "--ttl", "2h"])
    assert issued.exit_code == 0, issued.output
    claims = verify(issued.stdout.strip(), key=KEY.public_key(), now=datetime.now(UTC))
    assert claims.role is Role.SUPERVISOR
    assert runner.invoke(agents_app, ["token", "agent-18", "--ttl", "40d"]).exit_code == 2
    revoked = runner.invoke(agents_app, ["revoke", "--token", claims.token_id])
    assert revoked.exit_code == 0
    assert "revoked 1 token(s)" in revoked.stdout
    listed = runner.invoke(agents_app, ["revoked", "--json"])
    assert json.loads(listed.stdout) == [claims.token_id]
    assert runner.invoke(agents_app, ["revoke"]).exit_code == 2
