"""Signed commands to hubs on `down/cmd`: revocation lists and plans, sealed and published.

`push_revocations` and `publish_plans` sign one command per hub with the cloud signing key,
record it (migration 0003) and publish it with QoS 1. The CLI is `tecsa-cloud hubs
push-revocations` and `tecsa-cloud plans publish`. See docs/commands.md.
"""

from cloud.commands.errors import BrokerUnavailable, PlansFileError
from cloud.commands.publisher import publish_commands
from cloud.commands.push import Pushed, load_plans_file, publish_plans, push_revocations

__all__ = [
    "BrokerUnavailable",
    "PlansFileError",
    "Pushed",
    "load_plans_file",
    "publish_commands",
    "publish_plans",
    "push_revocations",
]
