"""The carrier and seller dashboards return exactly the numbers of five scripted shipments
(tests/metrics_scenario.py): on time against the promise and the carrier's estimate on the
first attempt in the customer's time zone, transit-time quantiles, late shipments, valid
tracking, ship-by misses."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def panels(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("metrics")
    subprocess.run([sys.executable, "-m", "tests.metrics_scenario", str(work / "clickhouse"), str(work / "out.json")],
                   check=True, timeout=300)
    results = orjson.loads((work / "out.json").read_bytes())
    return {title.split("/", 1)[1].split(" (")[0]: [tuple(r) for r in result["rows"]]
            for title, result in results.items()}


def linear_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 3)


def test_on_time_is_judged_on_the_first_attempt_in_the_customers_time_zone(panels):
    # ups: O1 on time, O2's first attempt (Oct 8) after its promise (Oct 7). fedex: O3 on time,
    # O4 delivered 02:30 UTC on Oct 9, which is Oct 8 in New York: on time.
    assert panels["On-time rate against the promise"] == [("fedex", 100.0, 2), ("ups", 50.0, 2)]
    # Against the carrier's original estimate O2's failed attempt was on the estimated day.
    assert panels["On-time rate against the carrier's original estimate"] == [("ups", 100.0, 2)]


def test_transit_time_quantiles_by_carrier_service_level_and_lane(panels):
    ups = [46.0, 75.0]  # O1: Oct 5 12:00 -> Oct 7 10:00; O2: Oct 6 09:00 -> Oct 9 12:00
    fedex = [89.0, 82.5]  # O3: Oct 5 15:00 -> Oct 9 08:00; O4: Oct 5 16:00 -> Oct 9 02:30
    assert panels["Transit time by carrier and service level"] == [
        ("fedex", "standard", linear_quantile(fedex, 0.5), linear_quantile(fedex, 0.9), 2),
        ("ups", "two_day", linear_quantile(ups, 0.5), linear_quantile(ups, 0.9), 2)]
    assert panels["Transit time by lane"] == [
        ("FC-A -> UTC", "ups", linear_quantile(ups, 0.5), linear_quantile(ups, 0.9), 2),
        ("FC-B -> America/New_York", "fedex", 82.5, 82.5, 1), ("FC-B -> UTC", "fedex", 89.0, 89.0, 1)]


def test_scan_gaps_and_failed_attempt_rate(panels):
    # Gaps between scans: ups 44 h (O1), 49 h and 25 h (O2); fedex 86 h (O3), 79.5 h (O4).
    assert panels["Scan gaps by carrier"] == [
        ("fedex", linear_quantile([86, 79.5], 0.5), linear_quantile([86, 79.5], 0.9), 86.0),
        ("ups", 44.0, linear_quantile([44, 49, 25], 0.9), 49.0)]
    assert panels["Exception and failed-attempt rates by carrier"] == [("fedex", 0.0, 0.0, 2), ("ups", 0.0, 50.0, 2)]


def test_predicted_late_by_carrier_and_lane(panels):
    # O2 was shipped the day before its promise on a lane where 80% take two days: flagged at
    # shipping, closed at delivery (after the promise: the alert was right). The other lanes
    # shipped packages and had none flagged.
    assert panels["Predicted late by carrier and lane"] == [
        ("ups", "FC-A -> US-CA", 1, 1, 0, 1), ("fedex", "FC-B -> ?", 3, 0, 0, 0), ("ups", "FC-A -> ?", 1, 0, 0, 0)]


def test_seller_metrics_as_amazon_defines_them(panels):
    # S1: O2 shipped the morning after its ship-by; S2 shipped all three on time.
    assert panels["Late shipment rate by seller"] == [("S1", 50.0, 2), ("S2", 0.0, 3)]
    # O5 never got a carrier scan.
    assert panels["Valid tracking rate by seller"] == [("S1", 100.0, 2), ("S2", 66.67, 3)]
    # Of tracked deliveries: O2 came after its promise; O3 and O4 on time.
    assert panels["On-time delivery by seller"] == [("S1", 50.0, 2), ("S2", 100.0, 2)]
    # The deadline tick an hour after ship-by found O2 not shipped: one miss at FC-A.
    assert panels["Ship-by misses per fulfillment center"] == [("FC-A", 1)]
    assert panels["Shipments by fulfillment center and seller"] == [("FC-A", "S1", 2, 2, 1), ("FC-B", "S2", 3, 2, 0)]
