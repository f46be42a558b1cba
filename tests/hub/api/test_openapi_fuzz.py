"""Schemathesis against the hub API's own OpenAPI: no input gives a 5xx or an undocumented answer.

The application is built by `create_app` over a real buffer in tmp_path. Every `ApiContext` hook
the buffer can serve is wired from it by name, so endpoints added to the app are fuzzed without
touching this file (`EXTRA_HOOKS` adapts the few whose shapes differ).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from hub.api import app as api_app
from hub.api.app import ApiContext, HubStatus, create_app
from hub.buffer import Buffer, BufferConfig
from wire.tokens import Role, issue

CLOUD = Ed25519PrivateKey.from_private_bytes(bytes(range(7, 39)))
MAX_EXAMPLES = 60  # per operation; the whole module stays well under a minute
# What the hub promises: never a 5xx, and every answer (status, content type, headers, body) as
# its OpenAPI documents it. Not `positive_data_acceptance`: some rules span fields (an encounter
# ends after it starts) that a JSON schema cannot express, and a clear 422 is the right answer.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


def _token(role: Role) -> str:
    return issue(
        CLOUD,
        agent_id="agent-fuzz",
        role=role,
        now=datetime.now(UTC),
        lifetime=timedelta(hours=2),
        token_id=f"fuzz-{role.value}",
    )


TOKENS = {role: _token(role) for role in Role}


def _extra_hooks(buffer: Buffer) -> dict[str, object]:
    """Hooks whose buffer method has another name or shape (as hub/daemon.py wires them)."""
    hooks: dict[str, object] = {}
    stored = getattr(api_app, "StoredRecord", None)
    flagged = getattr(buffer, "record_versions_flagged", None)
    if stored is not None and flagged is not None:
        hooks["record_versions"] = lambda rid: [stored(rec, c) for rec, c in flagged(rid)]
    return hooks


@pytest.fixture
def hub_schema(tmp_path):
    buffer = Buffer.open(BufferConfig(path=tmp_path / "buffer.sqlite3"))
    fixed = {
        "hub_id": "hub-fuzz-01",
        "cloud_signing_key": CLOUD.public_key(),
        "revoked": frozenset,
        "status": lambda: HubStatus(
            backlog=buffer.uplink_status().unsent,
            at_capacity=buffer.at_capacity,
            capacity_hours_left=buffer.capacity_hours_left(),
        ),
    }
    hooks = {
        f.name: getattr(buffer, f.name)
        for f in dataclasses.fields(ApiContext)
        if f.name not in fixed and callable(getattr(buffer, f.name, None))
    } | _extra_hooks(buffer)
    app = create_app(ApiContext(**fixed, **hooks))
    yield schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    buffer.close()


def test_no_input_gives_a_5xx_or_an_answer_outside_the_schema(hub_schema):
    # Schemathesis' pytest plugin (`from_fixture`) does not run under pytest 9, so the
    # operations are driven here: each one's strategy under hypothesis, every role's token.
    operations = [result.ok() for result in hub_schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert {"/api/v1/hub", "/api/v1/medical-records/bulk-sync"} <= paths
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case):
            for role in Role:  # each role reaches other branches (403 for some, work for others)
                case.call_and_validate(
                    headers={"Authorization": f"Bearer {TOKENS[role]}"}, checks=CHECKS
                )

        fuzz()
