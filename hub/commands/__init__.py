"""Signed commands from the cloud on `down/cmd`: verify, refuse replays and stale snapshots, apply.

`CommandHandler` is what the uplink calls with each message's bytes (`on_command`); it applies
`revocations` itself and dispatches other kinds to the async handlers it is given (`plans`
with `plans_handler`, `model_release` by whoever owns model releases). See docs/commands.md.
"""

from hub.commands.handler import (
    CommandHandler,
    CommandRefused,
    Handled,
    KindHandler,
    RevokedTokens,
    plans_handler,
)

__all__ = [
    "CommandHandler",
    "CommandRefused",
    "Handled",
    "KindHandler",
    "RevokedTokens",
    "plans_handler",
]
