"""The hub's command handler on a real buffer: apply, replay, stale snapshots, refusals, restart."""

from __future__ import annotations

from datetime import timedelta

import pytest
from commands_kit import CLOUD, NOW, OTHER, plans, revocations, signed
from prometheus_client import CollectorRegistry

from hub.buffer import Buffer, BufferConfig
from hub.commands import CommandHandler, CommandRefused, RevokedTokens, plans_handler
from wire.commands import MAX_COMMAND, CommandKind, ModelReleaseData

HUB = "hub-cmd-01"


def _handler(buffer, **kw):
    revoked = RevokedTokens(buffer, clock=lambda: NOW)
    handler = CommandHandler(
        hub_id=HUB,
        cloud_key=CLOUD.public_key(),
        buffer=buffer,
        handlers=kw.pop("handlers", {CommandKind.PLANS: plans_handler(buffer)}),
        revoked=revoked,
        clock=lambda: NOW,
        registry=kw.pop("registry", None),
        **kw,
    )
    return handler, revoked


async def test_a_revocation_list_is_applied_durably_and_reported(buffer, db):
    applied = []
    handler, revoked = _handler(buffer, on_applied=applied.append)
    result = await handler.handle(signed(revocations(5, "tok-1", "tok-2"), hub_id=HUB))
    assert result.outcome == "applied"
    assert result.kind == "revocations"
    assert revoked() == {"tok-1", "tok-2"}  # in memory at once: the API's next request sees it
    assert [c.kind for c in applied] == [CommandKind.REVOCATIONS]
    status = handler.status()["commands"]
    assert status["revocations_version"] == 5
    assert status["revoked_tokens"] == 2
    assert status["outcomes"] == {"applied": 1}
    await buffer.aclose()
    with Buffer.open(BufferConfig(path=db)) as reopened:
        assert reopened.revoked_token_ids(now=NOW) == {"tok-1", "tok-2"}


async def test_a_newer_snapshot_replaces_the_list_whole(buffer):
    handler, revoked = _handler(buffer)
    await handler.handle(signed(revocations(1, "tok-1", "tok-2"), hub_id=HUB))
    result = await handler.handle(signed(revocations(2, "tok-3"), hub_id=HUB))
    assert result.outcome == "applied"
    assert revoked() == {"tok-3"}


async def test_a_replayed_command_is_ignored(buffer):
    handler, revoked = _handler(buffer)
    first = signed(revocations(3, "tok-1"), hub_id=HUB)
    await handler.handle(first)
    await handler.handle(signed(revocations(4, "tok-2"), hub_id=HUB))
    again = await handler.handle(first)
    assert again.outcome == "duplicate"
    assert revoked() == {"tok-2"}
    assert handler.status()["commands"]["revocations_version"] == 4


async def test_a_stale_snapshot_is_refused_and_its_replay_is_a_duplicate(buffer):
    handler, revoked = _handler(buffer)
    await handler.handle(signed(revocations(7, "tok-7"), hub_id=HUB))
    stale = signed(revocations(6), hub_id=HUB)  # an older list would un-revoke tok-7
    assert (await handler.handle(stale)).outcome == "stale"
    assert (await handler.handle(signed(revocations(7), hub_id=HUB))).outcome == "stale"
    assert (await handler.handle(stale)).outcome == "duplicate"
    assert revoked() == {"tok-7"}
    assert handler.status()["commands"]["last_refused"]["outcome"] == "stale"
    assert handler.status()["commands"]["outcomes"] == {"applied": 1, "stale": 2}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (lambda: signed(revocations(9, "tok-x"), hub_id=HUB, key=OTHER), "IntegrityError"),
        (lambda: signed(revocations(9, "tok-x"), hub_id="hub-other"), "Misdirected"),
        (
            lambda: signed(
                revocations(9, "tok-x"),
                hub_id=HUB,
                now=NOW - timedelta(days=2),
                lifetime=timedelta(days=1),
            ),
            "Expired",
        ),
        (lambda: b"\x00" * (MAX_COMMAND + 1), "TooLarge"),
        (lambda: b"TSC\x01garbage", "DecodeError"),
    ],
    ids=["forged", "other-hub", "expired", "oversized", "garbage"],
)
async def test_invalid_messages_change_nothing_and_are_counted(buffer, payload, reason):
    registry = CollectorRegistry()
    handler, revoked = _handler(buffer, registry=registry)
    await handler.handle(signed(revocations(1, "tok-1"), hub_id=HUB))
    result = await handler.handle(payload())
    assert result.outcome == "invalid"
    assert result.reason is not None
    assert result.reason.startswith(reason)
    assert revoked() == {"tok-1"}
    status = handler.status()["commands"]
    assert status["revocations_version"] == 1
    assert status["outcomes"] == {"applied": 1, "invalid": 1}
    assert status["last_refused"]["reason"].startswith(reason)
    count = registry.get_sample_value(
        "tecsa_hub_commands_total", {"kind": "unknown", "outcome": "invalid"}
    )
    assert count == 1.0


async def test_plans_are_stored_and_stale_plans_ignored(buffer):
    handler, _ = _handler(buffer)
    assert (await handler.handle(signed(plans(3, "a", "b"), hub_id=HUB))).outcome == "applied"
    assert [p.id for p in buffer.plans()] == ["a", "b"]
    assert buffer.plans_version() == 3
    assert (await handler.handle(signed(plans(2, "old"), hub_id=HUB))).outcome == "stale"
    assert [p.id for p in buffer.plans()] == ["a", "b"]
    assert handler.status()["commands"]["plans_version"] == 3


async def test_a_kind_without_handler_is_refused_recorded_and_reported(buffer):
    registry = CollectorRegistry()
    handler, _ = _handler(buffer, registry=registry)
    release = signed(ModelReleaseData(release="AAEC"), hub_id=HUB)
    result = await handler.handle(release)
    assert result.outcome == "refused"
    assert result.reason == "no handler for kind model_release"
    assert (await handler.handle(release)).outcome == "duplicate"
    status = handler.status()["commands"]
    assert status["outcomes"] == {"refused": 1}
    sample = registry.get_sample_value(
        "tecsa_hub_commands_total", {"kind": "model_release", "outcome": "refused"}
    )
    assert sample == 1.0


async def test_a_handler_refusal_is_final_and_a_handler_failure_is_retried(buffer):
    calls = []

    async def refuse(command):
        calls.append(command.id)
        raise CommandRefused("release signed by an unknown key")

    handler, _ = _handler(buffer, handlers={CommandKind.MODEL_RELEASE: refuse})
    release = signed(ModelReleaseData(release="AAEC"), hub_id=HUB)
    result = await handler.handle(release)
    assert (result.outcome, result.reason) == ("refused", "release signed by an unknown key")
    assert (await handler.handle(release)).outcome == "duplicate"
    assert len(calls) == 1

    attempts = []

    async def flaky(command):
        attempts.append(command.id)
        if len(attempts) == 1:
            raise RuntimeError("disk hiccup")

    handler2, _ = _handler(buffer, handlers={CommandKind.MODEL_RELEASE: flaky})
    other = signed(ModelReleaseData(release="AAED"), hub_id=HUB)
    failed = await handler2.handle(other)
    assert failed.outcome == "failed"
    assert "disk hiccup" in (failed.reason or "")
    assert (await handler2.handle(other)).outcome == "applied"  # the redelivery applies it
    assert len(attempts) == 2


async def test_the_cache_is_loaded_from_the_buffer_at_start(buffer):
    handler, _ = _handler(buffer)
    await handler.handle(signed(revocations(1, "tok-1", "tok-2"), hub_id=HUB))
    fresh = RevokedTokens(buffer, clock=lambda: NOW)
    assert fresh() == frozenset()
    assert fresh.refresh() == {"tok-1", "tok-2"}
    assert fresh() == {"tok-1", "tok-2"}


async def test_revoked_tokens_past_their_expiry_are_not_kept(buffer):
    handler, revoked = _handler(buffer)
    await handler.handle(signed(revocations(1, "tok-old", days=-1), hub_id=HUB))
    assert revoked() == frozenset()
