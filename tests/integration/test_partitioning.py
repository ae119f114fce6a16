"""Envelopes and table keys assume our producers and Faust's place a key on the same
partition: check it against what the broker actually received."""

from __future__ import annotations

import pytest

from broker import clients
from models import topics
from models.routing import partition_for
from tests.integration.conftest import PARTITIONS

pytestmark = pytest.mark.integration


def test_producers_place_keys_where_partition_for_says(broker):
    keys = [f"ORD-{n:07d}-{n * 7919 % 65536:04x}" for n in range(200)] + ["1Z999", "9400A2", "x"]
    placed: dict[str, int] = {}
    producer = clients.producer(broker)
    for key in keys:
        producer.produce(topics.FC_EVENTS, key=key.encode(), value=b"{}",
                         on_delivery=lambda err, msg: placed.__setitem__(msg.key().decode(), msg.partition()))
    assert producer.flush(30) == 0
    assert len(set(placed.values())) == PARTITIONS
    assert placed == {key: partition_for(key, PARTITIONS) for key in keys}
