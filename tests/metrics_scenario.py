"""Five scripted shipments whose on-time status, transit times and late shipments are known,
run through the order rules and the sink's insert into a real chDB database, then read
back through the carrier and seller dashboards' own panel SQL.

Run as ``python -m tests.metrics_scenario <chdb path> <result.json>`` (chDB allows one
engine path per process, so the test runs it apart).
"""

from __future__ import annotations

import sys
import threading
from datetime import UTC, date, datetime, timedelta

import orjson

from models.codec import encode
from models.effects import HistoryRecord
from models.events import CarrierScan, ClockTick, Destination, OrderItem, OrderPlaced, PackageShipped, PackageStatus
from models.order import apply
from models.transit import LaneModel, LaneModels, LaneModelsUpdated, service_key


def t(day: int, hour: float) -> datetime:
    return datetime(2026, 10, day, tzinfo=UTC) + timedelta(hours=hour)


# order, seller, fc, carrier, service level, time zone, promise, shipped, accepted, attempts, carrier estimate
SHIPMENTS = [
    ("O1", "S1", "FC-A", "ups", "two_day", "UTC", date(2026, 10, 7), t(5, 12), t(5, 14),
     [("delivered", t(7, 10))], date(2026, 10, 7)),
    ("O2", "S1", "FC-A", "ups", "two_day", "UTC", date(2026, 10, 7), t(6, 9), t(6, 10),
     [("attempt_failed", t(8, 11)), ("delivered", t(9, 12))], date(2026, 10, 8)),
    ("O3", "S2", "FC-B", "fedex", "standard", "UTC", date(2026, 10, 10), t(5, 15), t(5, 18),
     [("delivered", t(9, 8))], None),
    # Delivered at 02:30 UTC on the 9th: 22:30 on the 8th in New York, the promised day.
    ("O4", "S2", "FC-B", "fedex", "standard", "America/New_York", date(2026, 10, 8), t(5, 16), t(5, 19),
     [("delivered", t(9, 2.5))], None),
    ("O5", "S2", "FC-B", "fedex", "standard", "UTC", date(2026, 10, 12), t(5, 17), None, [], None),
]
SHIP_BY = t(5, 20)
# The ups two-day lane model in force: 4 of 20 deliveries took 1 day, 16 took 2. O2, shipped
# the day before its promise, is 80% likely late: a predicted_late alert at its shipping.
MODELS = LaneModels().updated(LaneModelsUpdated(models=[
    LaneModel(key=service_key("ups", "two_day"), version=1, transit_days=[0, 4, 16])]))


def history() -> list[HistoryRecord]:
    records: list[HistoryRecord] = []
    for order, seller, fc, carrier, level, zone, promise, shipped, accepted, attempts, estimate in SHIPMENTS:
        state = None

        def feed(event) -> None:  # type: ignore[no-untyped-def]
            nonlocal state
            state, effects = apply(state, event, models=MODELS)
            records.extend(e for e in effects if isinstance(e, HistoryRecord))

        feed(OrderPlaced(event_id=f"{order}-p", order_id=order, occurred_at=t(5, 8), ingested_at=t(5, 8),
                         customer_id="C", seller_id=seller, fulfillment_center=fc, service_level=level,
                         promised_delivery_date=promise, ship_by=SHIP_BY, items=[OrderItem(sku="A", quantity=1)],
                         delivery_time_zone=zone,
                         destination=Destination(country="US", region="CA") if order == "O2" else None))
        steps = [(shipped, "ship")] + ([(accepted, "in_transit")] if accepted else [])
        steps += [(when, status) for status, when in attempts] + [(t(5, 21), "tick")]
        for when, step in sorted(steps, key=lambda s: s[0]):
            if step == "ship":
                feed(PackageShipped(event_id=f"{order}-s", order_id=order, occurred_at=when, ingested_at=when,
                                    package_id=f"{order}-P1", carrier=carrier, tracking_number=f"T{order}"))
            elif step == "tick":  # the worker's deadline timer, an hour after ship-by
                feed(ClockTick(event_id=f"{order}-tick", order_id=order, occurred_at=when))
            else:
                feed(CarrierScan(event_id=f"{order}-{step}-{when:%d%H}", source="generic", carrier=carrier,
                                 tracking_number=f"T{order}", status=PackageStatus(step), raw_code=step,
                                 occurred_at=when, ingested_at=when + timedelta(minutes=1), order_id=order,
                                 package_id=f"{order}-P1", estimated_delivery=estimate))
    return records


def main() -> None:
    import clickhouse_connect

    from sinks.clickhouse import insert_history
    from sinks.schema import migrate
    from trackline.ops_page import OpsPage, client_query

    path, out = sys.argv[1], sys.argv[2]
    client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    migrate(client)
    envelope = b"[" + b",".join(encode(r) for r in history()) + b"]"
    insert_history(client, envelope)  # the sink's own insert
    page = OpsPage(client_query(client, threading.Lock()))
    window = {"from": [str(t(1, 0).timestamp())], "to": [str(t(31, 0).timestamp())]}
    results = {f"{uid}/{panel['title']}": page.panel_rows(uid, panel["id"], window)
               for uid in ("trackline-carriers", "trackline-sellers") for panel in page.dashboards[uid]["panels"]}
    with open(out, "wb") as f:
        f.write(orjson.dumps(results, option=orjson.OPT_NON_STR_KEYS))


if __name__ == "__main__":
    main()
