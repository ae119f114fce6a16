"""Preferences on the real broker: a tombstone (a customer withdrew them) brings back the defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from models import topics
from models.routing import partition_for
from tests.integration.conftest import PARTITIONS, preferences_stored, produce

pytestmark = pytest.mark.integration

# Opted out of the confirmation, by SMS only: what a tombstone must take away again.
PICKY = {"channels": ["sms"], "opted_out": ["order_confirmed"]}


def order_for(customer: str, order_id: str) -> tuple:
    now = datetime.now(UTC)
    body = {"type": "order_placed", "event_id": f"{order_id}-placed", "order_id": order_id,
            "occurred_at": now.isoformat(), "customer_id": customer, "seller_id": "SELLER-1",
            "fulfillment_center": "FC-A", "service_level": "standard",
            "promised_delivery_date": (now + timedelta(days=5)).date().isoformat(),
            "ship_by": (now + timedelta(days=1)).isoformat(), "items": [{"sku": "SKU-1", "quantity": 1}]}
    return (topics.FC_EVENTS, order_id.encode(), orjson.dumps(body), [])


def same_partition_as(key: str, prefix: str) -> str:
    wanted = partition_for(key, PARTITIONS)
    return next(f"{prefix}{n}" for n in range(10_000) if partition_for(f"{prefix}{n}", PARTITIONS) == wanted)


def test_a_preferences_tombstone_restores_the_defaults(pipeline):
    control = "CUST-KEEPS"
    withdrawn = same_partition_as(control, "CUST-WITHDRAWS-")  # one partition: read in this order
    pipeline.start("worker", "notifier")
    produce(pipeline.bootstrap, [
        (topics.CUSTOMER_PREFERENCES, withdrawn.encode(), orjson.dumps({"customer_id": withdrawn, **PICKY}), []),
        (topics.CUSTOMER_PREFERENCES, withdrawn.encode(), None, []),  # the tombstone
        (topics.CUSTOMER_PREFERENCES, control.encode(), orjson.dumps({"customer_id": control, **PICKY}), []),
    ])

    def delivered(order_id: str) -> dict[str, dict]:
        return {c["type"]: c for c in pipeline.delivered() if c["order_id"] == order_id}

    # Positive marker: the worker stored the control customer's preferences, so the tombstone,
    # read before them on the same partition, is applied too.
    preferences_stored(pipeline, [control])
    produce(pipeline.bootstrap, [order_for(control, "ORD-KEEPS")])
    pipeline.wait_for(lambda: "estimate_set" in delivered("ORD-KEEPS"), 90, "the control customer's estimate")
    keeps = delivered("ORD-KEEPS")
    assert "order_confirmed" not in keeps and keeps["estimate_set"]["channels"] == ["sms"]

    produce(pipeline.bootstrap, [order_for(withdrawn, "ORD-WITHDRAWS")])
    pipeline.wait_for(lambda: "estimate_set" in delivered("ORD-WITHDRAWS"), 90, "the estimate after the tombstone")
    withdraws = delivered("ORD-WITHDRAWS")
    assert "order_confirmed" in withdraws, "the withdrawn opt-out still suppressed the confirmation"
    assert {c["channels"][0] for c in withdraws.values()} == {"email"}
