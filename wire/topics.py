"""MQTT topic names of the hub-cloud contract, built and parsed with validation.

Every topic is `tecsa/v1/hubs/{hub_id}/{direction}/{channel}`. A hub id is a DNS label (lowercase
letters, digits, inner hyphens, 1-63 characters) so that it is safe in a topic, an S3 key, a file
name and an mDNS TXT record, and can never smuggle in `+`, `#` or `/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from wire.errors import InvalidTopic

PREFIX = "tecsa/v1/hubs"
_HUB_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class Channel(StrEnum):
    """The four channels of a hub, as `{direction}/{channel}` topic suffixes."""

    BATCH = "up/batch"
    STATUS = "up/status"
    ACK = "down/ack"
    CMD = "down/cmd"


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed topic: which hub, which channel."""

    hub_id: str
    channel: Channel

    def __str__(self) -> str:
        return f"{PREFIX}/{self.hub_id}/{self.channel.value}"


def validate_hub_id(hub_id: str) -> str:
    """Return `hub_id` unchanged if it is a valid hub id, else raise `InvalidTopic`."""
    if not isinstance(hub_id, str) or _HUB_ID.fullmatch(hub_id) is None:
        raise InvalidTopic(
            f"invalid hub id {hub_id!r}: use 1-63 lowercase letters, digits and inner hyphens"
        )
    return hub_id


def topic(hub_id: str, channel: Channel) -> str:
    """Build the topic of `channel` for `hub_id`."""
    return str(Topic(validate_hub_id(hub_id), channel))


def batch_topic(hub_id: str) -> str:
    """Topic a hub publishes sealed batches to (QoS 1)."""
    return topic(hub_id, Channel.BATCH)


def status_topic(hub_id: str) -> str:
    """Topic of a hub's retained status (and its last will)."""
    return topic(hub_id, Channel.STATUS)


def ack_topic(hub_id: str) -> str:
    """Topic the cloud publishes signed acks to."""
    return topic(hub_id, Channel.ACK)


def cmd_topic(hub_id: str) -> str:
    """Topic the cloud publishes signed commands to."""
    return topic(hub_id, Channel.CMD)


def subscription(channel: Channel, *, share_group: str | None = None) -> str:
    """Filter for `channel` of every hub, optionally as an MQTT v5 shared subscription."""
    sub = f"{PREFIX}/+/{channel.value}"
    if share_group is None:
        return sub
    if _HUB_ID.fullmatch(share_group) is None:
        raise InvalidTopic(f"invalid share group {share_group!r}")
    return f"$share/{share_group}/{sub}"


def parse_topic(name: str) -> Topic:
    """Parse a concrete topic name (no wildcards) into a `Topic`, or raise `InvalidTopic`."""
    if not isinstance(name, str) or not name.startswith(PREFIX + "/"):
        raise InvalidTopic(f"not a tecsa v1 hub topic: {name!r}")
    rest = name[len(PREFIX) + 1 :]
    hub_id, sep, suffix = rest.partition("/")
    if not sep:
        raise InvalidTopic(f"topic has no channel: {name!r}")
    validate_hub_id(hub_id)
    try:
        channel = Channel(suffix)
    except ValueError:
        raise InvalidTopic(f"unknown channel {suffix!r} in topic {name!r}") from None
    return Topic(hub_id, channel)
