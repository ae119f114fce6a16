"""The tracking page as a customer's browser shows it: headless Chromium against the real
worker, fed through the embedded (memory-only) broker, with the link taken from the
notification command the customer would receive."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime, timedelta

from models import topics
from models.tracking_page import tracking_token
from tests.integration.conftest import SUPPORT_TOKEN, Pipeline, produce
from tests.integration.test_ops_dashboards import chromium_dom as dom_after
from tests.integration.test_real_traffic import carrier_events, order_placed, package_shipped

KEYS = "k1:tracking-key-0123456789abcdef"
REFRESH_SECONDS = 5


def chromium_dom(url: str) -> str:
    """The page as loaded, before its own refresh reloads it (Chromium's virtual time would
    otherwise reload it for ever)."""
    return dom_after(url, virtual_time_ms=REFRESH_SECONDS * 1000 // 2)


def test_the_customer_follows_the_link_in_the_command_and_sees_the_order_and_nothing_else(pipeline: Pipeline) -> None:
    base = f"http://127.0.0.1:{pipeline.web_port}"
    pipeline.env.update(TRACKLINE_TRACKING_PAGE_BASE_URL=base, TRACKLINE_TRACKING_PAGE_KEYS=KEYS,
                        TRACKLINE_TRACKING_PAGE_REFRESH_SECONDS=str(REFRESH_SECONDS))
    pipeline.start("worker", "notifier")
    now = datetime.now(UTC).replace(microsecond=0)
    for order_id, tracking in (("ORD-PAGE", "1ZPAGE0001"), ("ORD-OTHER", "1ZOTHER0002")):
        produce(pipeline.bootstrap, [
            (topics.FC_EVENTS, order_id.encode(), order_placed(order_id, now - timedelta(hours=3), now,
                                                               now + timedelta(days=3)), []),
            (topics.FC_EVENTS, order_id.encode(), package_shipped(order_id, tracking, now - timedelta(hours=2)), []),
            (topics.CARRIER_SCANS_RAW, tracking.encode(), carrier_events(tracking, [
                ("in_transit", now - timedelta(hours=1))]), [(topics.SOURCE_HEADER, b"generic")])])
    pipeline.wait_for(lambda: {c["order_id"] for c in pipeline.delivered() if c["type"] == "shipped"}
                      == {"ORD-PAGE", "ORD-OTHER"}, 90, "both shipped notices")
    shipped = next(c for c in pipeline.delivered() if c["type"] == "shipped" and c["order_id"] == "ORD-PAGE")
    link = shipped["tracking_page_url"]
    assert link.startswith(f"{base}/track/") and "ORD-PAGE" not in link  # the id is encoded, not readable
    assert link == f"{base}/track/{tracking_token('ORD-PAGE', 'k1', KEYS.split(':', 1)[1])}"

    page = chromium_dom(link)
    assert "On its way" in page and "In transit" in page and "1ZPAGE0001" in page
    assert f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' in page  # it refreshes itself
    # 3 days from now in UTC, the zone the order names: the estimate against the promise.
    assert f"Promised by {(now + timedelta(days=3)):%a %d %b %Y}" in page
    assert "ORD-OTHER" not in page and "1ZOTHER0002" not in page

    # A new scan: the page says so on its next load.
    produce(pipeline.bootstrap, [(topics.CARRIER_SCANS_RAW, b"1ZPAGE0001", carrier_events("1ZPAGE0001", [
        ("in_transit", now - timedelta(hours=1)), ("out_for_delivery", now)]), [(topics.SOURCE_HEADER, b"generic")])])
    pipeline.wait_for(lambda: any(c["type"] == "out_for_delivery" and c["order_id"] == "ORD-PAGE"
                                  for c in pipeline.delivered()), 90, "the out-for-delivery notice")
    page = chromium_dom(link)
    assert "Out for delivery" in page and "ORD-OTHER" not in page

    # Forged: another order's id under this link's signature, and a link signed with a guessed key.
    encoded, key_id, mac = link.rsplit("/", 1)[1].split(".")
    other = tracking_token("ORD-OTHER", "k1", "guessed-key-0123456789abcdef")
    for forged in (f"{other.split('.')[0]}.{key_id}.{mac}", other, "nonsense"):
        page = chromium_dom(f"{base}/track/{forged}")
        assert "Not found" in page and "ORD-OTHER" not in page and "1ZOTHER" not in page, forged

    # The support view: the token is required; with it, the same page marked as the support view.
    assert "support token required" in chromium_dom(f"{base}/support/orders/ORD-PAGE")
    request = urllib.request.Request(f"{base}/support/orders/ORD-PAGE",
                                     headers={"Authorization": f"Bearer {SUPPORT_TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        support = answer.read().decode()
    assert "support view" in support and "Out for delivery" in support and "ORD-OTHER" not in support


def test_without_a_public_base_url_commands_carry_no_tracking_page_link(pipeline: Pipeline) -> None:
    pipeline.start("worker", "notifier")
    now = datetime.now(UTC)
    produce(pipeline.bootstrap, [
        (topics.FC_EVENTS, b"ORD-NOLINK", order_placed("ORD-NOLINK", now, now, now + timedelta(days=3)), [])])
    pipeline.wait_for(lambda: any(c["order_id"] == "ORD-NOLINK" for c in pipeline.delivered()), 90,
                      "the order confirmation")
    assert all(c["tracking_page_url"] == "" for c in pipeline.delivered())
