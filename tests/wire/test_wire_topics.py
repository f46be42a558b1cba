from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire.errors import InvalidTopic
from wire.topics import (
    Channel,
    Topic,
    ack_topic,
    batch_topic,
    cmd_topic,
    parse_topic,
    status_topic,
    subscription,
    validate_hub_id,
)


def test_builders_give_the_documented_topics():
    assert batch_topic("hub-ke-0042") == "tecsa/v1/hubs/hub-ke-0042/up/batch"
    assert status_topic("hub-ke-0042") == "tecsa/v1/hubs/hub-ke-0042/up/status"
    assert ack_topic("hub-ke-0042") == "tecsa/v1/hubs/hub-ke-0042/down/ack"
    assert cmd_topic("hub-ke-0042") == "tecsa/v1/hubs/hub-ke-0042/down/cmd"


def test_subscriptions_plain_and_shared():
    assert subscription(Channel.BATCH) == "tecsa/v1/hubs/+/up/batch"
    assert (
        subscription(Channel.BATCH, share_group="ingest")
        == "$share/ingest/tecsa/v1/hubs/+/up/batch"
    )
    with pytest.raises(InvalidTopic):
        subscription(Channel.BATCH, share_group="a/b")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "+",
        "#",
        "a/b",
        "hub+1",
        "hub#",
        "Hub-1",
        "-hub",
        "hub-",
        "hub 1",
        "a" * 64,
        "hüb",
        "hub\x00",
    ],
)
def test_hub_ids_that_could_inject_are_refused(bad):
    with pytest.raises(InvalidTopic, match="invalid hub id"):
        validate_hub_id(bad)
    with pytest.raises(InvalidTopic):
        batch_topic(bad)


def test_parse_round_trip():
    assert parse_topic("tecsa/v1/hubs/h1/down/ack") == Topic("h1", Channel.ACK)
    for ch in Channel:
        assert parse_topic(str(Topic("hub-9", ch))) == Topic("hub-9", ch)


@pytest.mark.parametrize(
    "bad",
    [
        "tecsa/v2/hubs/h1/up/batch",
        "tecsa/v1/hubs/h1",
        "tecsa/v1/hubs/h1/up/other",
        "tecsa/v1/hubs/+/up/batch",
        "tecsa/v1/hubs/h1/up/batch/extra",
        "x",
    ],
)
def test_parse_refuses_what_is_not_a_hub_topic(bad):
    with pytest.raises(InvalidTopic):
        parse_topic(bad)


@given(st.text(max_size=80))
def test_parse_raises_only_invalid_topic(text):
    try:
        t = parse_topic(text)
    except InvalidTopic:
        return
    assert str(t) == text
