from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from models.events import CarrierScan, ClockTick, OrderItem, OrderPlaced, PackageShipped, PackageStatus, ServiceLevel

PAYLOADS = Path(__file__).parent / "payloads"
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def placed(order_id: str = "ORD-1", skus: tuple[str, ...] = ("SKU-1",)) -> OrderPlaced:
    return OrderPlaced(
        event_id=f"{order_id}-placed", order_id=order_id, occurred_at=at(0), customer_id="CUST-9",
        seller_id="SELLER-1", fulfillment_center="FC-A", service_level=ServiceLevel.two_day,
        promised_delivery_date=date(2026, 11, 4), ship_by=at(12 * 60),
        items=[OrderItem(sku=s, quantity=1) for s in skus],
    )


def shipped(order_id: str = "ORD-1", package: str = "P1", tracking: str = "1Z999",
            skus: tuple[str, ...] = ()) -> PackageShipped:
    return PackageShipped(
        event_id=f"{order_id}-{package}-shipped", order_id=order_id, occurred_at=at(60),
        package_id=package, carrier="UPS", tracking_number=tracking, service="Ground", skus=list(skus),
    )


def scan(status: PackageStatus, minutes: float, order_id: str = "ORD-1", package: str = "P1",
         tracking: str = "1Z999", location: str = "", **extra: object) -> CarrierScan:
    fields: dict = dict(
        event_id=f"{tracking}-{status.value}-{minutes}", source="easypost", carrier="ups",
        tracking_number=tracking, status=status, raw_code=status.value, occurred_at=at(minutes),
        ingested_at=at(minutes + 1), order_id=order_id, package_id=package, location=location,
    )
    return CarrierScan(**{**fields, **extra})


def tick(minutes: float, order_id: str = "ORD-1") -> ClockTick:
    """The worker's deadline timer, as the order agent receives it."""
    return ClockTick(event_id=f"tick-{order_id}-{minutes}", order_id=order_id, occurred_at=at(minutes))


@pytest.fixture
def easypost_payload() -> bytes:
    return (PAYLOADS / "easypost_tracker_updated.json").read_bytes()


def run(events, state=None):
    """Events through the order rules one by one, from ``state``: the final state and every effect."""
    from models.order import apply

    effects = []
    for event in events:
        state, produced = apply(state, event)
        effects.extend(produced)
    return state, effects
